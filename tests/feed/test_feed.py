"""The feed: idempotent ingest, searchable when ingest returns, BM25 with time and author filters, threads,
deletes, and an index that catches up with its store after a crash (killed mid-ingest included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from colossus.feed.feed import Feed
from colossus.feed.index import query_terms
from colossus.feed.post import MAX_QUERY, FeedError, Post, parse_time


def post(i, text, author="ann", day=1, reply_to=None) -> Post:
    return Post.from_dict({"id": str(i), "author": author, "created_at": f"2026-11-{day:02d}T12:00:00Z", "text": text,
                           "reply_to": reply_to})


@pytest.fixture
def feed(tmp_path):
    f = Feed(tmp_path / "feed")
    yield f
    f.close()


def ids(hits) -> list[str]:
    return [p.id for p, _ in hits]


def test_a_post_is_found_as_soon_as_ingest_returns_and_ids_are_idempotent(feed):
    assert feed.ingest([post(1, "Pella Vorn joined Ostra Labs")]) == [True]
    assert ids(feed.search("ostra")) == ["1"]
    assert feed.ingest([post(1, "a different text under the same id"), post(2, "Ostra Labs hires")]) == [False, True]
    assert feed.get("1").text == "Pella Vorn joined Ostra Labs"  # the first write of an id is kept
    assert sorted(ids(feed.search("ostra"))) == ["1", "2"] and feed.store.count() == 2


def test_search_ranks_by_bm25_and_filters_on_time_and_authors(feed):
    feed.ingest([post(1, "vorn vorn vorn moved", "ann", 1), post(2, "vorn moved to a city with a long name", "bob", 5),
                 post(3, "nothing about it", "ann", 9), post(4, "Vorn again", "cyd", 20)])
    assert ids(feed.search("vorn"))[0] == "1"  # the densest match first
    assert set(ids(feed.search("vorn", since=parse_time("2026-11-05")))) == {"2", "4"}
    assert set(ids(feed.search("vorn", until=parse_time("2026-11-05T12:00:00Z")))) == {"1", "2"}
    assert ids(feed.search("vorn", authors=["bob", "cyd"], since=parse_time("2026-11-10"))) == ["4"]
    assert set(ids(feed.search("vorn", exclude_authors=["ann"]))) == {"2", "4"}
    assert ids(feed.search("VORN!! (moved) AND OR:"))[0] == "1"  # punctuation and operators are plain words
    assert feed.search("vorn", limit=1) and len(feed.search("vorn", limit=1)) == 1
    assert feed.search("zebra") == []


def test_posts_holding_every_word_come_alone_and_any_word_only_when_none_does(feed):
    feed.ingest([post(1, "Pella Vorn joined Ostra Labs", "ann", 1), post(2, "Pella Rusk plays the harp", "bob", 3),
                 post(3, "Pella Pella Pella", "cyd", 4), post(4, "Vorn Falls is far", "ann", 9)])
    assert ids(feed.search("pella vorn")) == ["1"]  # not the other Pellas, however often they say it
    assert set(ids(feed.search("pella vorn", since=parse_time("2026-11-02")))) == {"2", "3", "4"}  # none left with both
    assert ids(feed.search("pella vorn", authors=["bob"])) == ["2"]
    assert feed.search("pella zebra") and set(ids(feed.search("pella zebra"))) == {"1", "2", "3"}


@pytest.mark.parametrize("query,message", [("", "empty"), ("!!! ???", "no words"),
                                           ("x" * (MAX_QUERY + 1), "more than")])
def test_bad_queries_are_refused_with_a_reason(feed, query, message):
    with pytest.raises(FeedError, match=message):
        feed.search(query)
    with pytest.raises(FeedError, match="limit"):
        feed.search("vorn", limit=0)
    assert query_terms("Pella's VORN") == ["pella", "s", "vorn"]


def test_a_thread_is_the_ancestors_the_post_and_every_reply(feed):
    feed.ingest([post(1, "root", day=1), post(2, "reply", day=2, reply_to="1"), post(3, "reply to reply", day=3,
                                                                                   reply_to="2"),
                 post(4, "second reply", day=4, reply_to="1"), post(5, "unrelated", day=5),
                 post(6, "reply to a post not stored", day=6, reply_to="999")])
    assert [p.id for p in feed.thread("2")] == ["1", "2", "3"]
    assert [p.id for p in feed.thread("1")] == ["1", "2", "3", "4"]
    assert [p.id for p in feed.thread("6")] == ["6"] and feed.thread("nope") == []


def test_a_deleted_post_is_no_longer_found(feed):
    feed.ingest([post(1, "vorn"), post(2, "vorn too")])
    assert feed.delete("1") and not feed.delete("1")
    assert ids(feed.search("vorn")) == ["2"] and feed.get("1") is None


def test_the_index_catches_up_with_its_store_after_a_crash(tmp_path):
    root = tmp_path / "feed"
    f = Feed(root)
    f.ingest([post(i, f"vorn number {i}") for i in range(5)])
    f.store.add([post(9, "vorn stored, never indexed")])  # the process died between the two commits
    f.store.delete("0")
    f.close()
    (root / "index" / "watermark.json").write_text(json.dumps({"watermark": 2}))  # died before its watermark
    g = Feed(root)
    try:
        got = ids(g.search("vorn", limit=100))
        assert sorted(got) == ["1", "2", "3", "4", "9"]  # replayed: no post twice, the deleted one gone
        assert g.index.watermark == g.store.last_change()
    finally:
        g.close()


def test_an_index_ahead_of_its_store_is_rebuilt(tmp_path):
    f = Feed(tmp_path / "a")
    f.ingest([post(1, "vorn")])
    f.close()
    (tmp_path / "a" / "feed.db").unlink()  # another store (here: an empty one) under the old index
    for suffix in ("-wal", "-shm"):
        (tmp_path / "a" / f"feed.db{suffix}").unlink(missing_ok=True)
    (tmp_path / "a" / "index" / "watermark.json").write_text(json.dumps({"watermark": 50}))
    g = Feed(tmp_path / "a")
    try:
        assert g.search("vorn") == [] and g.index.watermark == 0
    finally:
        g.close()


CHILD = """
import sys
from colossus.feed.feed import Feed
from colossus.feed.post import Post
f = Feed(sys.argv[1])
for b in range(10_000):
    f.ingest([Post.from_dict({"id": f"{b}-{i}", "author": "ann", "created_at": "2026-11-01",
                              "text": f"batch{b} vorn"}) for i in range(50)])
    print(b, flush=True)
"""


def test_posts_acknowledged_before_a_sigkill_are_stored_and_found(tmp_path):
    """A writer is killed (SIGKILL) after some batches were acknowledged: every acknowledged post is in the
    store and found by search once the feed is opened again."""
    root = tmp_path / "feed"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    acked = [int(proc.stdout.readline()) for _ in range(5)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    f = Feed(root)
    try:
        for b in acked:
            assert f.get(f"{b}-49") is not None
            assert len(f.search(f"batch{b}", limit=100)) == 50
        assert f.index.watermark == f.store.last_change()
    finally:
        f.close()
