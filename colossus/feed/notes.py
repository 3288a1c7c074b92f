"""A community note on a post, kept as X's Community Notes keep theirs: noteId, postId, classification,
summary, sources, status, createdAt and author.

    note = Note.new("1870", "MISINFORMED_OR_POTENTIALLY_MISLEADING",
                    "Pella Vorn joined Ostra Labs in 2025, as she wrote then.", ["/posts/1802"], author="colossus")
    note.to_dict()  # {"noteId": "…", "postId": "1870", "classification": …, "status": "NEEDS_MORE_RATINGS", …}

A note's sources are the evidence, as URLs: a post of this feed is cited by its permalink (/posts/ID), anything
else by an http(s) URL. A new note NEEDS_MORE_RATINGS unless a status is given; its id is a snowflake as X's
are (milliseconds since X's epoch, then a counter), so ids sort by creation. Note.new checks every field and
names the one that is wrong (FeedError, with .field). The store (colossus.feed.store) keeps notes in feed.db."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
import threading
import time
from dataclasses import dataclass

from colossus.feed.post import ID, FeedError, handle

CLASSIFICATIONS = ("MISINFORMED_OR_POTENTIALLY_MISLEADING", "NOT_MISLEADING")
STATUSES = ("NEEDS_MORE_RATINGS", "CURRENTLY_RATED_HELPFUL", "CURRENTLY_RATED_NOT_HELPFUL")
NEW_STATUS = "NEEDS_MORE_RATINGS"
ASSISTANT = "colossus"  # the author of a note when none is named: the assistant, which writes most of them
MAX_SUMMARY = 1_000  # characters (X allows 280 besides its links; an assistant's explanation needs more)
MAX_SOURCES = 10
MAX_URL = 2_048
# An http(s) URL on a named host (no user@ part), or a path on this server (/posts/1870, not //elsewhere), in
# printable ASCII. The same expression is the OpenAPI schema's pattern (feed_routes.NoteCreate).
URL_PATTERN = r"^(?:https?://[A-Za-z0-9.\-\[\]:]+(?:[/?#][!-~]*)?|/(?:[!-.0-~][!-~]*)?)$"
URL = re.compile(URL_PATTERN)
X_EPOCH_MS = 1_288_834_974_657  # X's snowflake epoch (2010-11-04)

_sequence = itertools.count(random.randrange(1 << 22))
_sequence_lock = threading.Lock()


def new_note_id() -> str:
    """A snowflake: milliseconds since X's epoch, shifted past 22 bits of a counter (unique in a process)."""
    with _sequence_lock:
        n = next(_sequence)
    return str(((int(time.time() * 1000) - X_EPOCH_MS) << 22) | (n & ((1 << 22) - 1)))


def iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Note:
    note_id: str
    post_id: str
    classification: str  # one of CLASSIFICATIONS
    summary: str
    sources: tuple[str, ...]  # URLs; a post of the feed as its permalink, /posts/ID
    status: str  # one of STATUSES
    created_at: dt.datetime  # UTC
    author: str  # a handle, without "@"

    @classmethod
    def new(cls, post_id: str, classification: str, summary: str, sources: list[str] | tuple[str, ...],
            status: str | None = None, author: str | None = None, created_at: dt.datetime | None = None) -> Note:
        """A new note, its fields checked (FeedError naming the bad one); now, when created_at is not given."""
        if not isinstance(post_id, str) or not ID.fullmatch(post_id):
            raise FeedError(f"post_id must be a post id, not {str(post_id)[:40]!r}", "post_id")
        if classification not in CLASSIFICATIONS:
            raise FeedError(f"classification must be {' or '.join(CLASSIFICATIONS)}, not {str(classification)[:60]!r}",
                            "classification")
        if not isinstance(summary, str) or not summary.strip():
            raise FeedError("summary must be a non-empty string", "summary")
        if len(summary) > MAX_SUMMARY:
            raise FeedError(f"summary has {len(summary)} characters, more than {MAX_SUMMARY}", "summary")
        if not isinstance(sources, list | tuple) or not 1 <= len(sources) <= MAX_SOURCES:
            raise FeedError(f"sources must be a list of 1 to {MAX_SOURCES} URLs (the evidence)", "sources")
        for i, url in enumerate(sources):
            if not isinstance(url, str) or len(url) > MAX_URL or not URL.fullmatch(url):
                raise FeedError(f"sources.{i} must be an http(s) URL or a path on this server such as /posts/1870 "
                                f"(printable ASCII, at most {MAX_URL} characters), not {str(url)[:60]!r}",
                                f"sources.{i}")
        status = NEW_STATUS if status is None else status
        if status not in STATUSES:
            raise FeedError(f"status must be one of {', '.join(STATUSES)}, not {str(status)[:60]!r}", "status")
        author = ASSISTANT if author is None else handle(author, "author")
        if created_at is None:
            created_at = dt.datetime.now(dt.timezone.utc)
        elif created_at.tzinfo is None:
            raise FeedError("created_at must be an aware time (UTC)", "created_at")
        created_at = created_at.astimezone(dt.timezone.utc)
        created_at = created_at.replace(microsecond=created_at.microsecond // 1000 * 1000)  # as X: milliseconds
        return cls(new_note_id(), post_id, classification, summary, tuple(dict.fromkeys(sources)), status,
                   created_at, author)

    def to_dict(self) -> dict:
        return {"noteId": self.note_id, "postId": self.post_id, "classification": self.classification,
                "summary": self.summary, "sources": list(self.sources), "status": self.status,
                "createdAt": iso(self.created_at), "author": self.author}
