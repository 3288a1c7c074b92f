"""`colossus feed`: add posts to the feed, search it, show a post with its thread and community notes.

    colossus feed add posts.jsonl                       # one post per line: id, author, created_at, text, ...
    colossus feed search "pella vorn" --since 2026-11-01 --author pella --limit 5
    colossus feed show 1870                             # the post, its thread and notes, as JSON
    colossus feed check 1870 --model runs/latest        # fact-check it (colossus.assistant.check_cli)

The feed lives in --feed DIR (default ~/.colossus/feed): feed.db, the store of record, and index/."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from colossus.errors import ColossusError
from colossus.feed.post import DEFAULT_FEED, MAX_LIMIT, FeedError, Post, handle, parse_time

BATCH = 10_000  # posts of a file stored and indexed in one go


def add_parser(sub):
    """The `feed` command and its subcommands -> (the subcommands, their common options), so that commands
    that need a model (colossus.assistant.check_cli: the feed is storage and search only) join them."""
    p = sub.add_parser("feed", help="the feed of posts: add, search, show, check",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fs = p.add_subparsers(dest="feed_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--feed", type=Path, default=DEFAULT_FEED,
                        help=f"the feed's directory (default: {DEFAULT_FEED})")
    a = fs.add_parser("add", parents=[common], help="add the posts of a JSONL file (ids already there are kept)")
    a.add_argument("file", type=Path, help="one JSON post per line; - for standard input")
    a.set_defaults(func=cmd_add)
    s = fs.add_parser("search", parents=[common], help="the posts best matching a query (BM25)")
    s.add_argument("query")
    s.add_argument("--since", help="only posts at or after this time (YYYY-MM-DD or ISO 8601, UTC)")
    s.add_argument("--until", help="only posts at or before this time")
    s.add_argument("--author", action="append", default=[], help="only posts by this handle (repeatable)")
    s.add_argument("--exclude-author", action="append", default=[], help="no posts by this handle (repeatable)")
    s.add_argument("--limit", type=int, default=10, help=f"posts at most (1..{MAX_LIMIT}, default 10)")
    s.add_argument("--json", action="store_true", help="one JSON object per line, with its score")
    s.set_defaults(func=cmd_search)
    w = fs.add_parser("show", parents=[common], help="a post, its thread and notes, as JSON")
    w.add_argument("id")
    w.set_defaults(func=cmd_show)
    return fs, common


def read_posts(path: Path) -> list[Post]:
    """Every post of a JSONL file, or a ColossusError naming the first bad line."""
    try:
        lines = sys.stdin.read().splitlines() if str(path) == "-" else path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ColossusError(f"cannot read {path}: {e}") from None
    posts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            posts.append(Post.from_dict(json.loads(line)))
        except json.JSONDecodeError as e:
            raise ColossusError(f"{path}:{n}: not JSON ({e.msg})") from None
        except FeedError as e:
            raise ColossusError(f"{path}:{n}: {e}") from None
    return posts


def cmd_add(a) -> int:
    from colossus.feed.feed import Feed  # the index (tantivy) loads with the feed, not with the CLI

    posts = read_posts(a.file)
    feed = Feed(a.feed)
    try:
        new = 0
        for i in range(0, len(posts), BATCH):
            new += sum(feed.ingest(posts[i:i + BATCH]))
        print(f"{new} post(s) added, {len(posts) - new} already in the feed; {feed.store.count()} in {feed.root}")
    finally:
        feed.close()
    return 0


def cmd_search(a) -> int:
    from colossus.feed.feed import Feed  # the index (tantivy) loads with the feed, not with the CLI

    since = parse_time(a.since, "--since") if a.since else None
    until = parse_time(a.until, "--until") if a.until else None
    authors = [handle(h, "--author") for h in a.author]
    excluded = [handle(h, "--exclude-author") for h in a.exclude_author]
    feed = Feed(a.feed)
    try:
        hits = feed.search(a.query, since, until, authors, excluded, a.limit)
    finally:
        feed.close()
    for post, score in hits:
        if a.json:
            print(json.dumps({**post.to_dict(), "score": round(score, 4)}, ensure_ascii=False))
        else:
            print(f"{post.id}  @{post.author}  {post.to_dict()['created_at']}  ({score:.2f})\n  {post.text}")
    if not hits and not a.json:
        print("no post matches")
    return 0


def cmd_show(a) -> int:
    from colossus.feed.feed import Feed  # the index (tantivy) loads with the feed, not with the CLI

    feed = Feed(a.feed)
    try:
        shown = feed.permalink(a.id)  # as GET /v1/posts/ID answers: {post, thread, notes}
        if shown is None:
            raise ColossusError(f"no post {a.id!r} in {feed.root}")
        print(json.dumps(shown, ensure_ascii=False, indent=1))
    finally:
        feed.close()
    return 0
