"""The feed's store of record: posts and their community notes in SQLite (WAL, synchronous=FULL), and a log
of every change to the posts.

Every add or delete is one transaction, committed (on disk) before the call returns. Each change gets
the next number of a log (`changes`): the search index records the last number it holds, and after a
crash it replays the log from there (SearchIndex.catch_up), so the index can be rebuilt from the store
at any time and never holds what the store does not. The same numbers are the live stream's positions:
a client that saw post N reads what came after it with added_after(N).

Notes (colossus.feed.notes) are rows of their own table, each on a stored post (add_note refuses one on a
post not stored, in the same statement), removed with their post; they are not in the log (the index
holds no note).

Mentions of the assistant (colossus.feed.mentions) are rows of a third table, written in the transaction that
stores their post, so a post acknowledged is never a mention lost; the assistant's reply to one is stored in
the transaction that marks it answered, so a mention is answered once, whatever crashes in between. They go
with their post, and are not in the log either."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from colossus.feed.mentions import Mention
from colossus.feed.notes import Note
from colossus.feed.post import Post, PostNotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    id TEXT PRIMARY KEY, author TEXT NOT NULL, created_at TEXT NOT NULL, ts INTEGER NOT NULL,
    text TEXT NOT NULL, reply_to TEXT, lang TEXT, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS posts_by_reply ON posts(reply_to);
DROP INDEX IF EXISTS posts_by_time;
CREATE INDEX IF NOT EXISTS posts_by_time_seq ON posts(ts, seq);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, post_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notes (
    note_id TEXT PRIMARY KEY, post_id TEXT NOT NULL, classification TEXT NOT NULL, summary TEXT NOT NULL,
    sources TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, author TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notes_by_post ON notes(post_id, created_at);
CREATE TABLE IF NOT EXISTS mentions (
    post_id TEXT PRIMARY KEY, state TEXT NOT NULL, reply_id TEXT, attempts INTEGER NOT NULL,
    created TEXT NOT NULL, seq INTEGER NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS mentions_by_state ON mentions(state, seq);
"""
THREAD_LIMIT = 200  # posts of a thread returned at most (ancestors and replies)


def _row(r: tuple) -> Post:
    pid, author, created_at, _ts, text, reply_to, lang = r
    return Post(pid, author, dt.datetime.fromisoformat(created_at), text, reply_to, lang)


_COLS = "id, author, created_at, ts, text, reply_to, lang"
_NOTE_COLS = "note_id, post_id, classification, summary, sources, status, created_at, author"
_MENTION_COLS = "post_id, state, reply_id, attempts, created, error"


def _note(r: tuple) -> Note:
    note_id, post_id, classification, summary, sources, status, created_at, author = r
    return Note(note_id, post_id, classification, summary, tuple(json.loads(sources)), status,
                dt.datetime.fromisoformat(created_at), author)


def _mention(r: tuple) -> Mention:
    post_id, state, reply_id, attempts, created, error = r
    return Mention(post_id, state, reply_id, attempts, dt.datetime.fromisoformat(created), error)


@dataclass(frozen=True)
class Page:
    """Posts newest first, whether older ones follow, and the last change of the store when they were read
    (GET /v1/posts/stream?after=last_seq then sends every post added since)."""

    posts: list[Post]
    has_more: bool
    last_seq: int


class FeedStore:
    def __init__(self, path: Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, posts: Iterable[Post], mentions: Collection[str] = ()) -> list[int | None]:
        """Store the posts not stored yet (by id; a post stored before is left as it was) in one transaction
        -> for each, its change number if it was new, None if it was stored before. The new posts whose ids
        are in `mentions` are pending mentions from the same commit on."""
        posts = list(posts)
        new = []
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for p in posts:
                    seq = self._insert(p)
                    if seq is not None and p.id in mentions:
                        self._db.execute(f"INSERT INTO mentions ({_MENTION_COLS}, seq) VALUES "
                                         "(?, 'pending', NULL, 0, ?, NULL, ?)", (p.id, now, seq))
                    new.append(seq)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def _insert(self, p: Post) -> int | None:
        """Inside a transaction: the post, if its id is not stored yet -> its change number, or None."""
        cur = self._db.execute("INSERT INTO changes (op, post_id) SELECT 'add', ? WHERE NOT "
                               "EXISTS (SELECT 1 FROM posts WHERE id = ?)", (p.id, p.id))
        if not cur.rowcount:
            return None
        self._db.execute(f"INSERT INTO posts ({_COLS}, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (p.id, p.author, p.created_at.isoformat(), p.ts, p.text, p.reply_to, p.lang, cur.lastrowid))
        return cur.lastrowid

    def delete(self, post_id: str) -> bool:
        """Remove a post, its notes and its mention -> whether it was there."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = self._db.execute("DELETE FROM posts WHERE id = ?", (post_id,)).rowcount
                if gone:
                    self._db.execute("INSERT INTO changes (op, post_id) VALUES ('delete', ?)", (post_id,))
                    self._db.execute("DELETE FROM notes WHERE post_id = ?", (post_id,))
                    self._db.execute("DELETE FROM mentions WHERE post_id = ?", (post_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return bool(gone)

    def get(self, post_id: str) -> Post | None:
        with self._lock:
            r = self._db.execute(f"SELECT {_COLS} FROM posts WHERE id = ?", (post_id,)).fetchone()
        return _row(r) if r else None

    def get_many(self, ids: list[str]) -> dict[str, Post]:
        out: dict[str, Post] = {}
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                q = f"SELECT {_COLS} FROM posts WHERE id IN ({','.join('?' * len(chunk))})"
                out.update((r[0], _row(r)) for r in self._db.execute(q, chunk))
        return out

    def thread(self, post_id: str) -> list[Post]:
        """The post's ancestors (through reply_to, oldest first), the post, then its replies and theirs (oldest
        first): at most THREAD_LIMIT posts; [] when the post is not stored."""
        post = self.get(post_id)
        if post is None:
            return []
        up: list[Post] = []
        seen = {post.id}
        at = post
        while at.reply_to and at.reply_to not in seen and len(up) < THREAD_LIMIT // 2:
            parent = self.get(at.reply_to)
            if parent is None:
                break
            up.append(parent)
            seen.add(parent.id)
            at = parent
        down: list[Post] = []
        frontier = [post.id]
        with self._lock:
            while frontier and len(down) < THREAD_LIMIT - len(up) - 1:
                q = f"SELECT {_COLS} FROM posts WHERE reply_to IN ({','.join('?' * len(frontier))}) ORDER BY ts, id"
                replies = [_row(r) for r in self._db.execute(q, frontier) if r[0] not in seen]
                replies = replies[:THREAD_LIMIT - len(up) - 1 - len(down)]
                down += replies
                seen.update(r.id for r in replies)
                frontier = [r.id for r in replies]
        return up[::-1] + [post] + sorted(down, key=lambda p: (p.created_at, p.id))

    def recent(self, limit: int = 50, before: str | None = None) -> Page:
        """The newest posts (by created_at, then by when they were stored), newest first; with `before`, a post
        id, those that come after that post in this order (PostNotFound if it is not stored)."""
        with self._lock:  # one connection, serialised: no write lands between the two reads
            last = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
            if before is None:
                rows = self._db.execute(f"SELECT {_COLS} FROM posts ORDER BY ts DESC, seq DESC LIMIT ?",
                                        (limit + 1,)).fetchall()
            else:
                at = self._db.execute("SELECT ts, seq FROM posts WHERE id = ?", (before,)).fetchone()
                if at is None:
                    raise PostNotFound(f"before: no post with id {before[:80]!r}", "before")
                rows = self._db.execute(f"SELECT {_COLS} FROM posts WHERE (ts, seq) < (?, ?) "
                                        "ORDER BY ts DESC, seq DESC LIMIT ?", (*at, limit + 1)).fetchall()
        return Page([_row(r) for r in rows[:limit]], len(rows) > limit, last)

    def added_after(self, seq: int, limit: int = 500) -> list[tuple[int, Post]]:
        """The posts added after change `seq` and still stored, oldest first, with their change numbers."""
        cols = ", ".join("p." + c for c in _COLS.split(", "))
        with self._lock:
            rows = self._db.execute(
                f"SELECT c.seq, {cols} FROM changes c JOIN posts p ON p.id = c.post_id AND p.seq = c.seq "
                "WHERE c.seq > ? AND c.op = 'add' ORDER BY c.seq LIMIT ?", (seq, limit)).fetchall()
        return [(r[0], _row(r[1:])) for r in rows]

    def add_note(self, note: Note) -> None:
        """Store a note on a stored post (PostNotFound if it is not), committed before the call returns."""
        with self._lock:
            cur = self._db.execute(
                f"INSERT INTO notes ({_NOTE_COLS}) SELECT ?, ?, ?, ?, ?, ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM posts WHERE id = ?)",
                (note.note_id, note.post_id, note.classification, note.summary, json.dumps(list(note.sources)),
                 note.status, note.created_at.isoformat(timespec="microseconds"), note.author, note.post_id))
        if not cur.rowcount:
            raise PostNotFound(f"no post with id {note.post_id[:80]!r}", "post_id")

    def notes(self, post_ids: Sequence[str]) -> dict[str, list[Note]]:
        """The notes of each post that has some, oldest first."""
        out: dict[str, list[Note]] = {}
        with self._lock:
            for i in range(0, len(post_ids), 500):
                chunk = list(post_ids[i:i + 500])
                q = (f"SELECT {_NOTE_COLS} FROM notes WHERE post_id IN ({','.join('?' * len(chunk))}) "
                     "ORDER BY created_at, note_id")
                for r in self._db.execute(q, chunk):
                    out.setdefault(r[1], []).append(_note(r))
        return out

    # mentions of the assistant (colossus.feed.mentions)

    def mention(self, post_id: str) -> Mention | None:
        with self._lock:
            r = self._db.execute(f"SELECT {_MENTION_COLS} FROM mentions WHERE post_id = ?", (post_id,)).fetchone()
        return _mention(r) if r else None

    def pending_mentions(self, limit: int = 100) -> list[Mention]:
        """The mentions still to answer, in the order their posts were stored."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_MENTION_COLS} FROM mentions WHERE state = 'pending' ORDER BY seq "
                                    "LIMIT ?", (limit,)).fetchall()
        return [_mention(r) for r in rows]

    def start_mention(self, post_id: str) -> int | None:
        """Count an attempt at a pending mention, committed before it starts (so one that kills its server
        counts too) -> the attempts so far, or None when the mention is not pending any more."""
        with self._lock:
            rows = self._db.execute("UPDATE mentions SET attempts = attempts + 1 WHERE post_id = ? AND state = "
                                    "'pending' RETURNING attempts", (post_id,)).fetchall()  # all: the commit
        return rows[0][0] if rows else None

    def undo_attempt(self, post_id: str) -> None:
        """Uncount the attempt started last: it was stopped (the server shutting down, the engine full),
        not failed."""
        with self._lock:
            self._db.execute("UPDATE mentions SET attempts = MAX(attempts - 1, 0) WHERE post_id = ? AND state = "
                             "'pending'", (post_id,))

    def fail_mention(self, post_id: str, error: str, final: bool) -> None:
        """Record an attempt's failure; with final, the mention is failed and no longer tried."""
        with self._lock:
            self._db.execute("UPDATE mentions SET error = ?, state = CASE WHEN ? THEN 'failed' ELSE state END "
                             "WHERE post_id = ? AND state = 'pending'", (error[:1000], final, post_id))

    def answer_mention(self, post_id: str, reply: Post) -> tuple[bool, int | None]:
        """In one transaction: store the reply (unless its id is stored: the reply written before) and mark the
        mention answered by it -> (whether the mention was pending and is now answered, the reply's change
        number if it was stored now). A post of the reply's id that is not this reply (another author, or
        replying to another post) fails the mention instead."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                pending = self._db.execute("SELECT 1 FROM mentions WHERE post_id = ? AND state = 'pending'",
                                           (post_id,)).fetchone()
                seq, answered = None, False
                if pending:
                    seq = self._insert(reply)
                    if seq is None:
                        author, to = self._db.execute("SELECT author, reply_to FROM posts WHERE id = ?",
                                                      (reply.id,)).fetchone()
                        answered = author.lower() == reply.author.lower() and to == post_id
                    else:
                        answered = True
                    if answered:
                        self._db.execute("UPDATE mentions SET state = 'answered', reply_id = ?, error = NULL "
                                         "WHERE post_id = ?", (reply.id, post_id))
                    else:
                        self._db.execute("UPDATE mentions SET state = 'failed', error = ? WHERE post_id = ?",
                                         (f"the reply's id {reply.id} is taken by another post", post_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return answered, seq

    def mention_counts(self) -> dict[str, int]:
        """How many mentions are in each state (every state, 0 included)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM mentions GROUP BY state").fetchall()
        return {"pending": 0, "answered": 0, "failed": 0} | dict(rows)

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM posts").fetchone()[0]

    def last_change(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]

    def changes(self, after: int, batch: int = 10_000) -> Iterator[tuple[int, str, Post | str]]:
        """Every change after `after`, in order: (seq, "add", post) for a post still stored, (seq, "delete", id)
        for one removed (an add whose post was removed later is left out: its delete follows)."""
        while True:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT c.seq, c.op, c.post_id, {', '.join('p.' + c for c in _COLS.split(', '))} FROM changes c "
                    "LEFT JOIN posts p ON p.id = c.post_id AND p.seq = c.seq WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
                    (after, batch)).fetchall()
            if not rows:
                return
            for seq, op, pid, *post in rows:
                if op == "delete":
                    yield seq, "delete", pid
                elif post[0] is not None:
                    yield seq, "add", _row(tuple(post))
            after = rows[-1][0]
