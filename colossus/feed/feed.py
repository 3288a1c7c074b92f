"""The feed: posts in their store of record (colossus.feed.store), a search index kept in step with it
(colossus.feed.index), community notes on the posts (colossus.feed.notes), and the listeners of the live
stream (colossus.feed.live).

    feed = Feed("~/.colossus/feed")
    feed.ingest([Post.from_dict(d) for d in posts])    # stored, committed, indexed: searchable on return
    for post, score in feed.search("pella vorn", since=parse_time("2026-11-01"), authors=["pella"]):
        ...
    feed.add_note("1870", "MISINFORMED_OR_POTENTIALLY_MISLEADING", "She joined in 2025.", ["/posts/1802"])
    feed.permalink("1870")                             # {post, thread, notes}: what GET /v1/posts/1870 answers

ingest() returns once the posts are committed to the store (on disk) and to the index: a post can be
searched as soon as the call that added it returns. The index is only ever filled from the store's log of
changes (one path for ingest and for recovery): opening a feed after a crash replays what the index had
not committed. Each ingest tells the live stream's listeners of its new posts, in the order of the store's log,
once they are searchable.

A new post that mentions the assistant's handle (`handle`; colossus.feed.mentions) is stored as a pending
mention in the same transaction as the post, and `on_mention` (when set) is called once that is committed;
answer_mention(id, reply) stores the assistant's reply and marks the mention answered, in one transaction
(the reply is indexed and streamed as an ingested post is). colossus.assistant.mentions writes the replies."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from colossus.feed.index import TantivyIndex, catch_up
from colossus.feed.live import Broadcast
from colossus.feed.mentions import DEFAULT_HANDLE, Mention, is_mention
from colossus.feed.notes import Note
from colossus.feed.post import DEFAULT_FEED, Post
from colossus.feed.post import handle as checked_handle
from colossus.feed.store import FeedStore, Page

log = logging.getLogger(__name__)


class Feed:
    def __init__(self, root: Path | str = DEFAULT_FEED, handle: str = DEFAULT_HANDLE):
        self.root = Path(root).expanduser()
        self.handle = checked_handle(handle, "handle")  # the assistant's: posts that mention it are answered
        self.on_mention: Callable[[], None] | None = None  # called (in the ingesting thread) after a new mention
        self.store = FeedStore(self.root / "feed.db")
        self.index = TantivyIndex(self.root / "index")
        self._lock = threading.Lock()  # one writer: the store's order of changes is the index's (and the stream's)
        self.broadcast = Broadcast()
        if self.index.watermark > self.store.last_change():  # an index newer than its store: not this store's
            log.warning("the feed's index is ahead of its store (%s): rebuilding it", self.root)
            self.index.clear()
        replayed = catch_up(self.index, self.store)
        if replayed:
            log.info("feed index caught up with its store: %d change(s) replayed", replayed)

    def close(self) -> None:
        self.broadcast.close()
        with self._lock:
            self.index.close()
            self.store.close()

    def ingest(self, posts: Sequence[Post]) -> list[bool]:
        """Store and index the posts -> for each, whether it was new (a post id stored before is kept as it was)."""
        mentions = {p.id for p in posts if is_mention(p, self.handle)}
        with self._lock:
            seqs = self.store.add(posts, mentions)
            added = [(seq, p) for seq, p in zip(seqs, posts, strict=True) if seq is not None]
            if added:
                catch_up(self.index, self.store)
                self.broadcast.publish(added)
        if self.on_mention is not None and any(p.id in mentions for _, p in added):
            self.on_mention()
        return [seq is not None for seq in seqs]

    def answer_mention(self, post_id: str, reply: Post) -> bool:
        """Store the assistant's reply to a pending mention and mark the mention answered, in one transaction
        -> whether it was answered now (False: it was not pending, or a post took the reply's id)."""
        with self._lock:
            answered, seq = self.store.answer_mention(post_id, reply)
            if seq is not None:
                catch_up(self.index, self.store)
                self.broadcast.publish([(seq, reply)])
        return answered

    def mention(self, post_id: str) -> Mention | None:
        return self.store.mention(post_id)

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

    def recent(self, limit: int = 50, before: str | None = None) -> Page:
        """The newest posts, newest first; after the post `before` (an id) in that order, when given."""
        return self.store.recent(limit, before)

    def added_after(self, seq: int, limit: int = 500) -> list[tuple[int, Post]]:
        """The posts added after change `seq`, oldest first, with their change numbers (the stream's replay)."""
        return self.store.added_after(seq, limit)

    def add_note(self, post_id: str, classification: str, summary: str, sources: Sequence[str],
                 status: str | None = None, author: str | None = None,
                 created_at: dt.datetime | None = None) -> Note:
        """A new note on a stored post, committed -> the note (FeedError naming a bad field; PostNotFound)."""
        note = Note.new(post_id, classification, summary, sources, status, author, created_at)
        self.store.add_note(note)
        return note

    def notes(self, post_id: str) -> list[Note]:
        """The post's notes, oldest first."""
        return self.store.notes([post_id]).get(post_id, [])

    def permalink(self, post_id: str) -> dict | None:
        """What the post's permalink shows, as the API answers it: {post, thread, notes, mention}: the thread's
        posts each with their notes, the post's own notes, and its state as a mention of the assistant (null
        when it is none); None when the post is not stored."""
        thread = self.thread(post_id)
        post = next((p for p in thread if p.id == post_id), None)
        if post is None:
            return None
        notes = self.store.notes([p.id for p in thread])
        return {"post": post.to_dict(),
                "thread": [{**p.to_dict(), "notes": [n.to_dict() for n in notes.get(p.id, [])]} for p in thread],
                "notes": [n.to_dict() for n in notes.get(post_id, [])],
                "mention": m.to_dict() if (m := self.store.mention(post_id)) else None}
