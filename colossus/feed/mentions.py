"""Mentions of the assistant: which posts mention its handle, the id of its reply to one, and a mention's
state as the store keeps it (the `mentions` table of feed.db, colossus.feed.store).

    is_mention(post, "colossus")          # True for "@Colossus where does Pella Vorn work?" by @pella
    strip_handle(post.text, "colossus")   # "where does Pella Vorn work?"
    reply_id("1870")                      # "1870-reply": the id of the assistant's reply to post 1870

A handle is mentioned as X links it: "@" then 1 to 15 letters, digits or underscores, not preceded by a word
character (email@colossus.com mentions nobody) and not followed by another handle character (@colossus_bot
is someone else); case does not matter. The assistant never answers its own posts (author == the handle)
nor a post that is itself the assistant's reply (its id is reply_id of the post it replies to, whatever
handle it was written under). Nothing here generates a reply: colossus.assistant.mentions does."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from colossus.feed.notes import ASSISTANT, iso
from colossus.feed.post import Post

DEFAULT_HANDLE = ASSISTANT  # the assistant's handle unless `colossus serve --handle NAME` says otherwise
MENTION = re.compile(r"(?<!\w)@([A-Za-z0-9_]{1,15})(?![A-Za-z0-9_])")
STATES = ("pending", "answered", "failed")
REPLY_SUFFIX = "-reply"


def mentioned(text: str) -> list[str]:
    """The handles the text mentions, lowercased, in order (repeats kept)."""
    return [m.group(1).lower() for m in MENTION.finditer(text)]


def reply_id(post_id: str) -> str:
    """The id of the assistant's reply to a post: derived from the post's, so writing it twice writes it once.
    A post id too long to take the suffix (ids have at most 64 characters) is hashed first."""
    if len(post_id) + len(REPLY_SUFFIX) > 64:
        post_id = hashlib.sha256(post_id.encode()).hexdigest()[:40]
    return post_id + REPLY_SUFFIX


def is_mention(post: Post, handle: str) -> bool:
    """Whether the assistant (handle, without "@") is to answer this post."""
    handle = handle.lower()
    if post.author.lower() == handle:
        return False
    if post.reply_to is not None and post.id == reply_id(post.reply_to):
        return False  # a reply by the assistant, perhaps under a handle it had before
    return handle in mentioned(post.text)


def strip_handle(text: str, handle: str) -> str:
    """The text without its mentions of the handle (and the ":" or "," after one): what the post asks. The
    text itself when nothing else is left."""
    pattern = re.compile(rf"(?<!\w)@{re.escape(handle)}(?![A-Za-z0-9_])[:,]?[ \t]*", re.IGNORECASE)
    left = pattern.sub("", text).strip()
    return re.sub(r"[ \t]{2,}", " ", left) or text.strip()


@dataclass(frozen=True)
class Mention:
    """A post that mentions the assistant, as the store keeps it: pending until its reply is stored (then
    answered, with reply_id), or failed after its last attempt (error says why)."""

    post_id: str
    state: str  # one of STATES
    reply_id: str | None
    attempts: int  # attempts started (one killed with its server counts)
    created: dt.datetime  # when the mention was stored: with its post, in the same transaction
    error: str | None = None  # the last attempt's failure

    def to_dict(self) -> dict:
        return {"state": self.state, "reply_id": self.reply_id, "attempts": self.attempts,
                "created": iso(self.created), "error": self.error}
