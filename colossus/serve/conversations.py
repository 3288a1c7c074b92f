"""Conversations kept in SQLite, so the web chat's history survives restarts and crashes.

The file defaults to ~/.colossus/conversations.db (`--db PATH` to change it): conversations belong
to the person serving, not to a model, and a model directory may be read-only or replaced. The
journal is WAL with synchronous=FULL, and every write is committed before the route answers, so a
SIGKILL loses nothing a client was told was saved.

A conversation is {id, object: "conversation", title, created, updated, system, settings,
messages: [{id, role, content, created, meta}]}; times are Unix seconds, as in the OpenAI API."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from colossus.errors import ColossusError

DEFAULT_DB = Path("~/.colossus/conversations.db")
ROLES = ("system", "user", "assistant", "tool")
DEFAULT_TITLE = "New conversation"
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, system TEXT, settings TEXT NOT NULL,
    created INTEGER NOT NULL, updated INTEGER NOT NULL,
    touched INTEGER NOT NULL);  -- a counter: the order of changes, finer than `updated` in seconds
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, created INTEGER NOT NULL, meta TEXT);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, seq);
CREATE INDEX IF NOT EXISTS conversations_by_touch ON conversations(touched);
"""


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class ConversationStore:
    """One connection guarded by a lock: writes are tiny, and SQLite serialises writers anyway."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise ColossusError(f"cannot open the conversation database {self.path}: {e}") from e
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # reads

    def list(self, limit: int = 100) -> list[dict]:
        """Newest first, without messages (message_count instead)."""
        with self.lock:
            rows = self.db.execute(
                "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
                "FROM conversations c ORDER BY touched DESC LIMIT ?", (limit,)).fetchall()
        return [self._conversation(r, None) | {"message_count": r["n"]} for r in rows]

    def get(self, cid: str) -> dict | None:
        with self.lock:
            row = self.db.execute("SELECT * FROM conversations WHERE id = ?", (cid,)).fetchone()
            if row is None:
                return None
            msgs = self.db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq",
                                   (cid,)).fetchall()
        return self._conversation(row, [self._message(m) for m in msgs])

    # writes: each one a transaction committed before returning

    def create(self, title: str | None = None, system: str | None = None, settings: dict | None = None,
               messages: list[dict] | None = None) -> dict:
        cid, now = new_id("conv"), int(time.time())
        with self.lock, self._transaction():
            self.db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (cid, title or DEFAULT_TITLE, system, json.dumps(settings or {}), now, now, self._tick()))
            self._insert_messages(cid, messages or [], 0, now)
        return self.get(cid)  # type: ignore[return-value]

    def update(self, cid: str, *, title: str | None = None, system: str | None = None,
               clear_system: bool = False, settings: dict | None = None,
               messages: list[dict] | None = None) -> dict | None:
        """Changes the given fields; messages, when given, replace all of them (edit and resend)."""
        now = int(time.time())
        with self.lock, self._transaction():
            if self.db.execute("SELECT 1 FROM conversations WHERE id = ?", (cid,)).fetchone() is None:
                return None
            if title is not None:
                self.db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, cid))
            if system is not None or clear_system:
                self.db.execute("UPDATE conversations SET system = ? WHERE id = ?", (system, cid))
            if settings is not None:
                self.db.execute("UPDATE conversations SET settings = ? WHERE id = ?", (json.dumps(settings), cid))
            if messages is not None:
                self.db.execute("DELETE FROM messages WHERE conversation_id = ?", (cid,))
                self._insert_messages(cid, messages, 0, now)
            self._touch(cid, now)
        return self.get(cid)

    def append(self, cid: str, message: dict) -> dict | None:
        now = int(time.time())
        with self.lock, self._transaction():
            if self.db.execute("SELECT 1 FROM conversations WHERE id = ?", (cid,)).fetchone() is None:
                return None
            seq = self.db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM messages WHERE conversation_id = ?",
                                  (cid,)).fetchone()[0]
            [mid] = self._insert_messages(cid, [message], seq, now)
            self._touch(cid, now)
            row = self.db.execute("SELECT * FROM messages WHERE id = ?", (mid,)).fetchone()
        return self._message(row)

    def delete(self, cid: str) -> bool:
        with self.lock, self._transaction():
            return self.db.execute("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount > 0

    # helpers

    def _transaction(self):
        return _Transaction(self.db)

    def _tick(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(touched), 0) + 1 FROM conversations").fetchone()[0]

    def _touch(self, cid: str, now: int) -> None:
        self.db.execute("UPDATE conversations SET updated = ?, touched = ? WHERE id = ?", (now, self._tick(), cid))

    def _insert_messages(self, cid: str, messages: list[dict], first_seq: int, now: int) -> list[str]:
        ids, seen = [], set()
        for i, m in enumerate(messages):
            mid = m.get("id")
            if not (isinstance(mid, str) and ID_PATTERN.match(mid)) or mid in seen or self._taken(mid, cid):
                mid = new_id("msg")
            seen.add(mid)
            created = m.get("created") if isinstance(m.get("created"), int) else now
            meta = m.get("meta")
            self.db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (mid, cid, first_seq + i, m["role"], m["content"], created,
                             None if meta is None else json.dumps(meta)))
            ids.append(mid)
        return ids

    def _taken(self, mid: str, cid: str) -> bool:
        """A message id belongs to another conversation (ids are unique across the store)."""
        row = self.db.execute("SELECT conversation_id FROM messages WHERE id = ?", (mid,)).fetchone()
        return row is not None and row[0] != cid

    @staticmethod
    def _conversation(row: sqlite3.Row, messages: list[dict] | None) -> dict:
        out = {"id": row["id"], "object": "conversation", "title": row["title"], "created": row["created"],
               "updated": row["updated"], "system": row["system"], "settings": json.loads(row["settings"])}
        if messages is not None:
            out["messages"] = messages
        return out

    @staticmethod
    def _message(row: sqlite3.Row) -> dict:
        return {"id": row["id"], "role": row["role"], "content": row["content"], "created": row["created"],
                "meta": None if row["meta"] is None else json.loads(row["meta"])}


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception); the connection is in autocommit mode."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
