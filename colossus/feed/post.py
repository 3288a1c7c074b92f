"""A post, shaped like a post on X: id, author (a handle), created_at, text, reply_to, lang.

    post = Post.from_dict({"id": "1870", "author": "@pella", "created_at": "2026-11-30T09:00:00Z",
                           "text": "Pella Vorn joined Ostra Labs today.", "lang": "en"})

from_dict checks every field and names the one that is wrong (FeedError); a time without a zone is
taken as UTC, and every time is kept in UTC. The handle is kept without its "@"."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from colossus.errors import ColossusError

ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HANDLE = re.compile(r"^@?([A-Za-z0-9_]{1,15})$")  # X's handles: letters, digits, underscores, 15 at most
LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # a BCP 47 tag: "en", "pt-BR"
MAX_TEXT = 25_000  # characters: X's longest posts
MAX_QUERY = 1_000  # characters of a search query
MAX_LIMIT = 100  # posts one search returns at most
DEFAULT_FEED = Path("~/.colossus/feed")  # where a feed lives unless told: feed.db and index/
FIELDS = ("id", "author", "created_at", "text", "reply_to", "lang")


RESERVED_IDS = ("search", "stream")  # routes of /v1/posts (GET /v1/posts/search, /v1/posts/stream), not posts


class FeedError(ColossusError):
    """Bad input to the feed: the message names the field and what is wrong with it; `field` is that field's
    name (dotted for an item of a list: sources.1), when the error is about one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class PostNotFound(FeedError):
    """The post named (by id) is not in the feed."""


def parse_time(value: str, field: str = "created_at") -> dt.datetime:
    """An ISO 8601 time (a date alone is its midnight) -> aware UTC datetime; FeedError naming `field` if not."""
    must = f"{field} must be an ISO 8601 time such as 2026-11-30T09:00:00Z"
    if not isinstance(value, str):
        raise FeedError(f"{must}, not {type(value).__name__}", field)
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FeedError(f"{must}, not {value[:40]!r}", field) from None
    return (t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t).astimezone(dt.timezone.utc)


def handle(value: str, field: str = "author") -> str:
    """'@pella' or 'pella' -> 'pella'; FeedError naming `field` otherwise."""
    m = HANDLE.match(value) if isinstance(value, str) else None
    if not m:
        raise FeedError(f"{field} must be a handle of 1 to 15 letters, digits or underscores (as @pella), "
                        f"not {str(value)[:40]!r}", field)
    return m.group(1)


@dataclass(frozen=True)
class Post:
    id: str
    author: str  # the handle, without "@"
    created_at: dt.datetime  # UTC
    text: str
    reply_to: str | None = None
    lang: str | None = None

    @property
    def ts(self) -> int:
        """created_at in Unix seconds: what the index filters on."""
        return int(self.created_at.timestamp())

    @classmethod
    def from_dict(cls, d: object) -> Post:
        if not isinstance(d, dict):
            raise FeedError(f"a post must be a JSON object, not {type(d).__name__}")
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            raise FeedError(f"unknown post field(s) {', '.join(unknown)}: a post has {', '.join(FIELDS)}")
        for name in ("id", "author", "created_at", "text"):
            if d.get(name) is None:
                raise FeedError(f"a post needs {name}", name)
        pid = d["id"]
        if isinstance(pid, int) and not isinstance(pid, bool):
            pid = str(pid)  # X's ids are numbers in some clients' JSON
        if not isinstance(pid, str) or not ID.fullmatch(pid):
            raise FeedError(f"id must be 1 to 64 letters, digits, '-' or '_', not {str(pid)[:40]!r}", "id")
        if pid in RESERVED_IDS:
            raise FeedError(f"id {pid!r} is reserved: /v1/posts/{pid} is a route of the API, not a post", "id")
        text = d["text"]
        if not isinstance(text, str) or not text.strip():
            raise FeedError("text must be a non-empty string", "text")
        if len(text) > MAX_TEXT:
            raise FeedError(f"text has {len(text)} characters, more than {MAX_TEXT}", "text")
        reply_to = d.get("reply_to")
        if isinstance(reply_to, int) and not isinstance(reply_to, bool):
            reply_to = str(reply_to)
        if reply_to is not None and (not isinstance(reply_to, str) or not ID.fullmatch(reply_to)):
            raise FeedError(f"reply_to must be a post id, not {str(reply_to)[:40]!r}", "reply_to")
        if reply_to == pid:
            raise FeedError("a post cannot reply to itself", "reply_to")
        lang = d.get("lang")
        if lang is not None and (not isinstance(lang, str) or not LANG.match(lang)):
            raise FeedError(f"lang must be a language tag such as en or pt-BR, not {str(lang)[:40]!r}", "lang")
        return cls(pid, handle(d["author"]), parse_time(d["created_at"]), text, reply_to, lang)

    def to_dict(self) -> dict:
        return {"id": self.id, "author": self.author,
                "created_at": self.created_at.isoformat().replace("+00:00", "Z"), "text": self.text,
                "reply_to": self.reply_to, "lang": self.lang}
