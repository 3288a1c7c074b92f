"""The feed: posts in their store of record (colossus.feed.store) and a search index kept in step with it
(colossus.feed.index).

    feed = Feed("~/.colossus/feed")
    feed.ingest([Post.from_dict(d) for d in posts])    # stored, committed, indexed: searchable on return
    for post, score in feed.search("pella vorn", since=parse_time("2026-11-01"), authors=["pella"]):
        ...

ingest() returns once the posts are committed to the store (on disk) and to the index: a post can be
searched as soon as the call that added it returns. The index is only ever filled from the store's log of
changes (one path for ingest and for recovery): opening a feed after a crash replays what the index had
not committed."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from colossus.feed.index import TantivyIndex, catch_up
from colossus.feed.post import DEFAULT_FEED, Post
from colossus.feed.store import FeedStore

log = logging.getLogger(__name__)


class Feed:
    def __init__(self, root: Path | str = DEFAULT_FEED):
        self.root = Path(root).expanduser()
        self.store = FeedStore(self.root / "feed.db")
        self.index = TantivyIndex(self.root / "index")
        self._lock = threading.Lock()  # one writer: the store's order of changes is the index's
        if self.index.watermark > self.store.last_change():  # an index newer than its store: not this store's
            log.warning("the feed's index is ahead of its store (%s): rebuilding it", self.root)
            self.index.clear()
        replayed = catch_up(self.index, self.store)
        if replayed:
            log.info("feed index caught up with its store: %d change(s) replayed", replayed)

    def close(self) -> None:
        with self._lock:
            self.index.close()
            self.store.close()

    def ingest(self, posts: Sequence[Post]) -> list[bool]:
        """Store and index the posts -> for each, whether it was new (a post id stored before is kept as it was)."""
        with self._lock:
            new = self.store.add(posts)
            if any(new):
                catch_up(self.index, self.store)
        return new

    def delete(self, post_id: str) -> bool:
        with self._lock:
            gone = self.store.delete(post_id)
            if gone:
                catch_up(self.index, self.store)
        return gone

    def search(self, query: str, since: dt.datetime | None = None, until: dt.datetime | None = None,
               authors: Sequence[str] | None = None, exclude_authors: Sequence[str] | None = None,
               limit: int = 10) -> list[tuple[Post, float]]:
        """The posts best matching the query (BM25), best first, within the time range and authors given."""
        hits = self.index.search(query, since, until, authors, exclude_authors, limit)
        posts = self.store.get_many([h.id for h in hits])
        return [(posts[h.id], h.score) for h in hits if h.id in posts]

    def get(self, post_id: str) -> Post | None:
        return self.store.get(post_id)

    def thread(self, post_id: str) -> list[Post]:
        return self.store.thread(post_id)

    def recent(self, limit: int = 50) -> list[Post]:
        return self.store.recent(limit)
