"""Replies to mentions: a post that mentions the assistant's handle gets a reply in its thread, written by the
assistant loop with the same tools and citations as a chat answer.

    worker = MentionWorker(assistant, feed)     # the server starts it once the model is loaded
    feed.on_mention = worker.wake               # from any thread: a new mention was stored
    task = asyncio.create_task(worker.run())    # answers the pending mentions, oldest first, until cancelled

The feed stores a mention with its post (colossus.feed.mentions, colossus.feed.store), so a mention whose
ingest was acknowledged is never lost. The worker takes the pending ones in the order they were stored, one
at a time: it runs the loop on the mention's text without the handle (the thread's earlier posts before it,
as far as they fit), mode "auto", greedy, then stores the reply and marks the mention answered in one
transaction. The reply's id is derived from the mention's, so a mention is answered exactly once: an attempt
cut short by a crash leaves it pending (the next start answers it), and one whose reply is already stored is
marked answered without a second one.

A reply reads as one on X: "@author " (the post it answers), the answer with its [n] markers, then a line per
cited post, "[n] /posts/ID" (its permalink on this server, as community notes cite posts). Its searches leave
out the mention itself (a question is no evidence of its answer) and the assistant's own posts (it does not
cite itself). An attempt is counted when it starts, so a mention that kills its server is tried at most
MAX_ATTEMPTS times; one that fails that often, or that cannot fit the model's context, is failed (logged)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Collection

from colossus.assistant.loop import ANSWER_ROOM, Answer, Assistant
from colossus.assistant.search import SearchParameters
from colossus.data.chat_template import render_prompt
from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError
from colossus.feed.feed import Feed
from colossus.feed.mentions import Mention, is_mention, reply_id, strip_handle
from colossus.feed.post import MAX_LIMIT, MAX_TEXT, Post
from colossus.infer.engine import Delta, EngineFull
from colossus.infer.sampling import SamplingParams

log = logging.getLogger(__name__)

REPLY_TOKENS = 192  # tokens one reply may take, its tool calls included
REPLY_ROOM = 256  # tokens of the context kept free beyond the thread's posts (tool results, the reply), at most half
MAX_ATTEMPTS = 3
RETRY_DELAY = 1.0  # seconds after a failed attempt, times the attempts so far
POLL = 30.0  # seconds between looks at the store when nothing wakes the worker
BATCH = 100  # pending mentions read at a time


class Unanswerable(ColossusError):
    """A mention no attempt can answer (it does not fit the model's context): failed at once."""


class FeedWithout:
    """The feed as one reply's searches see it: without some posts (the mention itself)."""

    def __init__(self, feed: Feed, ids: Collection[str]):
        self.feed, self.ids = feed, set(ids)

    def search(self, query, since=None, until=None, authors=None, exclude_authors=None, limit: int = 10):
        hits = self.feed.search(query, since, until, authors, exclude_authors, min(limit + len(self.ids), MAX_LIMIT))
        return [(p, s) for p, s in hits if p.id not in self.ids][:limit]

    def get(self, post_id: str) -> Post | None:
        return self.feed.get(post_id)


def reply_messages(tok: Tokenizer, earlier: list[Post], mention: Post, handle: str, max_context: int) -> list[dict]:
    """The conversation a reply answers: the thread's posts before the mention (the assistant's own as its turns,
    the others as the user's, "@author: text"), oldest first, then what the mention asks. The oldest posts are
    left out until the prompt leaves REPLY_ROOM tokens (at most half the context) free; Unanswerable when the
    mention alone leaves less than the loop needs to answer."""
    question = [{"role": "user", "content": strip_handle(mention.text, handle)}]
    if len(render_prompt(tok, question)) > max_context - ANSWER_ROOM:
        raise Unanswerable(f"the mention does not fit the model's context of {max_context} tokens with a reply")
    turns = [{"role": "assistant", "content": p.text} if p.author.lower() == handle.lower()
             else {"role": "user", "content": f"@{p.author}: {strip_handle(p.text, handle)}"} for p in earlier]
    room = max_context - min(REPLY_ROOM, max_context // 2)
    while turns and len(render_prompt(tok, turns + question)) > room:
        turns.pop(0)
    return turns + question


def reply_text(author: str, answer: str, citations: list[str]) -> str:
    """A reply as posted: "@author answer [1]." then "[1] URL" per citation, in the markers' order."""
    text = f"@{author} {answer.strip()}"
    if citations:
        text += "\n\n" + "\n".join(f"[{i}] {url}" for i, url in enumerate(citations, 1))
    return text


class MentionWorker:
    """Answers the feed's pending mentions with the assistant, one at a time, oldest first."""

    def __init__(self, assistant: Assistant, feed: Feed, max_attempts: int = MAX_ATTEMPTS,
                 on_answer: Callable[[Answer], None] | None = None):
        """on_answer: called with each answer the loop wrote (for the server's metrics)."""
        self.assistant, self.feed, self.max_attempts, self.on_answer = assistant, feed, max_attempts, on_answer
        self.search = SearchParameters(mode="auto", excluded_handles=(feed.handle,))
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """A mention was stored: look now rather than at the next poll. Safe from any thread."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
                self._loop.call_soon_threadsafe(self._woken.set)

    async def run(self) -> None:
        """Answer every pending mention, then each new one as it comes, until cancelled."""
        self._loop = asyncio.get_running_loop()
        while True:
            self._woken.clear()
            try:
                pending = await asyncio.to_thread(self.feed.store.pending_mentions, BATCH)
                for m in pending:
                    await self.answer(m)
            except Exception:  # the store failed (a full disk, say): the mentions stay pending, tried again
                log.exception("answering the feed's mentions failed; trying again in %g s", POLL)
                pending = []
            if not pending:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), POLL)

    async def answer(self, m: Mention) -> None:
        """One attempt at a pending mention: its reply stored and the mention marked answered, or the failure
        recorded."""
        feed = self.feed
        post = await asyncio.to_thread(feed.get, m.post_id)
        if post is None:
            return  # deleted: its mention went with it
        if not is_mention(post, feed.handle):  # stored by a feed of another handle (`colossus feed add`, say)
            await asyncio.to_thread(feed.store.fail_mention, post.id, f"it does not mention @{feed.handle}", True)
            log.warning("mention %s is not one of @%s: failed", post.id, feed.handle)
            return
        written = await asyncio.to_thread(feed.get, reply_id(post.id))
        if written is not None:  # stored before (a feed imported with its replies, say): no second one
            await asyncio.to_thread(feed.answer_mention, post.id, written)
            return
        attempt = await asyncio.to_thread(feed.store.start_mention, post.id)
        if attempt is None:
            return
        try:
            reply = await self.write(post, attempt)
        except asyncio.CancelledError:
            feed.store.undo_attempt(post.id)  # stopped, not failed: the next start tries it again
            raise
        except EngineFull as e:
            await asyncio.to_thread(feed.store.undo_attempt, post.id)
            log.info("mention %s waits: %s", post.id, e)
            await asyncio.sleep(RETRY_DELAY)
            return
        except Exception as e:
            final = isinstance(e, Unanswerable) or attempt >= self.max_attempts
            error = str(e) if isinstance(e, ColossusError) else f"{type(e).__name__}: {e}"
            await asyncio.to_thread(feed.store.fail_mention, post.id, error, final)
            if final:
                log.error("mention %s failed after %d attempt(s): %s", post.id, attempt, error)
            else:
                log.warning("mention %s: attempt %d failed (%s); it is tried again", post.id, attempt, error)
                await asyncio.sleep(RETRY_DELAY * attempt)
            return
        if await asyncio.to_thread(feed.answer_mention, post.id, reply):
            log.info("mention %s answered by post %s", post.id, reply.id)

    async def write(self, post: Post, attempt: int) -> Post:
        """The reply to a mention, written by the loop (not stored)."""
        a, handle = self.assistant, self.feed.handle
        thread = await asyncio.to_thread(self.feed.thread, post.id)
        earlier = thread[:next(i for i, p in enumerate(thread) if p.id == post.id)]
        messages = reply_messages(a.tok, earlier, post, handle, a.engine.max_context)
        loop = Assistant(a.engine, a.tok, FeedWithout(self.feed, {post.id}), a.permalink)
        answer = loop.answer(messages, SamplingParams(temperature=0.0, max_tokens=REPLY_TOKENS), self.search,
                             request_id=f"mention-{post.id}-{attempt}")
        try:
            text = "".join([e.text async for e in answer.events() if isinstance(e, Delta)])
        finally:
            answer.close()
        if self.on_answer is not None:
            self.on_answer(answer)
        if not text.strip():
            raise ColossusError("the model wrote no reply")
        body = reply_text(post.author, text, answer.citations)
        if len(body) > MAX_TEXT:
            raise ColossusError(f"the reply has {len(body)} characters, more than a post's {MAX_TEXT}")
        return Post(reply_id(post.id), handle, dt.datetime.now(dt.timezone.utc), body, post.id)
