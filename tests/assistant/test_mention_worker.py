"""Replies to mentions (colossus.assistant.mentions) through the real engine, with a model trained to use the
tools (tests/tool_model.py) and a real feed: the conversation a reply answers, the reply's text and
citations, once per mention, failures bounded and an attempt stopped by a shutdown not counted."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import tool_model as tm

from colossus.assistant import mentions as am
from colossus.assistant.loop import Assistant
from colossus.assistant.mentions import MentionWorker, Unanswerable, reply_messages, reply_text
from colossus.data.chat_template import render_prompt
from colossus.feed.feed import Feed
from colossus.feed.mentions import reply_id
from colossus.feed.post import Post
from colossus.infer.engine import Engine
from colossus.model.io import load_model

T = dt.datetime(2026, 12, 1, 9, tzinfo=dt.timezone.utc)
EXPECTED = f"@alice {tm.RECENT_A}\n\n[1] /posts/{tm.POST.id}"


def post(pid: str, text: str, author: str = "alice", reply_to: str | None = None) -> Post:
    return Post(pid, author, T, text, reply_to)


@pytest.fixture(scope="module")
def engine(tool_model_dir, tok):
    e = Engine(load_model(tool_model_dir), tok, max_batch=4)
    e.start()
    yield e
    e.shutdown()


@pytest.fixture
def feed(tmp_path):
    f = Feed(tmp_path / "feed")
    f.ingest([tm.POST])
    yield f
    f.close()


@pytest.fixture
def worker(engine, tok, feed, monkeypatch):
    monkeypatch.setattr(am, "RETRY_DELAY", 0.0)
    return MentionWorker(Assistant(engine, tok, feed, permalink=lambda pid: f"/posts/{pid}"), feed)


def answer_pending(worker: MentionWorker) -> None:
    async def go():
        for m in worker.feed.store.pending_mentions():
            await worker.answer(m)

    asyncio.run(go())


def test_the_conversation_is_the_threads_earlier_posts_then_the_question(tok):
    earlier = [post("1", "Pella Vorn joined Ostra Labs @colossus", author="pella"),
               post("2", "@pella Congratulations on the new post at Ostra Labs, and good luck there.",
                    author="colossus",
                    reply_to="1")]
    mention = post("3", "@colossus where does she work now?", reply_to="2")
    assert reply_messages(tok, earlier, mention, "colossus", 512) == [
        {"role": "user", "content": "@pella: Pella Vorn joined Ostra Labs"},
        {"role": "assistant", "content": "@pella Congratulations on the new post at Ostra Labs, and good luck there."},
        {"role": "user", "content": "where does she work now?"}]
    question = [{"role": "user", "content": "where does she work now?"}]
    small = len(render_prompt(tok, question)) + 48  # room for the question and the loop's answer, not the thread
    assert len(render_prompt(tok, [{"role": "assistant", "content": earlier[1].text}] + question)) > small // 2 + 1
    assert reply_messages(tok, earlier, mention, "colossus", small) == question  # the oldest posts go first
    with pytest.raises(Unanswerable, match="context"):
        reply_messages(tok, [], post("4", "@colossus " + "vorn " * 400), "colossus", 512)


def test_a_reply_is_the_answer_to_its_author_with_a_line_per_citation():
    assert reply_text("alice", " Ostra Labs [1], then Kelm [2]. ", ["/posts/a", "/posts/b"]) == (
        "@alice Ostra Labs [1], then Kelm [2].\n\n[1] /posts/a\n[2] /posts/b")
    assert reply_text("bob", "I could not find anything.", []) == "@bob I could not find anything."


def test_a_mention_is_answered_once_in_its_thread_with_the_models_answer_and_its_citation(worker, feed):
    feed.ingest([post("m1", f"@colossus {tm.RECENT_Q}")])
    answer_pending(worker)
    reply = feed.get(reply_id("m1"))
    assert (reply.author, reply.reply_to, reply.text) == ("colossus", "m1", EXPECTED)  # the question not cited
    assert feed.mention("m1").state == "answered" and feed.mention("m1").attempts == 1
    asyncio.run(worker.answer(feed.store.mention("m1")))  # again, as after a crash: nothing more
    assert [p.id for p in feed.thread("m1")] == ["m1", reply.id] and feed.get(reply.id) == reply


def test_a_failing_mention_is_tried_max_attempts_times_then_failed(worker, feed):
    def fail(answer):
        raise RuntimeError("the metrics are down")

    worker.on_answer = fail
    feed.ingest([post("m1", f"@colossus {tm.RECENT_Q}")])
    for attempt in range(1, am.MAX_ATTEMPTS + 1):
        assert feed.mention("m1").state == "pending"
        answer_pending(worker)
        assert feed.mention("m1").attempts == attempt
    m = feed.mention("m1")
    assert (m.state, m.error) == ("failed", "RuntimeError: the metrics are down") and feed.get(reply_id("m1")) is None
    answer_pending(worker)
    assert feed.mention("m1").attempts == am.MAX_ATTEMPTS


def test_a_mention_that_cannot_fit_fails_at_once(worker, feed):
    feed.ingest([post("m1", "@colossus " + "vorn " * 2000)])
    answer_pending(worker)
    m = feed.mention("m1")
    assert (m.state, m.attempts) == ("failed", 1) and "context" in m.error


def test_an_attempt_stopped_by_a_shutdown_leaves_the_mention_pending_and_uncounted(worker, feed, engine):
    feed.ingest([post("m1", f"@colossus {tm.RECENT_Q}")])

    async def go():
        engine.pause()
        try:
            task = asyncio.ensure_future(worker.answer(feed.store.mention("m1")))
            deadline = time.monotonic() + 60
            while engine.stats()["running"] + engine.stats()["waiting"] == 0:  # the attempt is in the engine
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            engine.resume()

    asyncio.run(go())
    m = feed.mention("m1")
    assert (m.state, m.attempts) == ("pending", 0) and feed.get(reply_id("m1")) is None
    answer_pending(worker)
    assert feed.get(reply_id("m1")).text == EXPECTED


def test_the_worker_answers_what_is_pending_then_each_new_mention_as_it_is_woken(worker, feed, monkeypatch):
    monkeypatch.setattr(am, "POLL", 600.0)  # only a wake-up can be in time
    feed.ingest([post("m1", f"@colossus {tm.RECENT_Q}")])
    feed.on_mention = worker.wake

    async def go():
        task = asyncio.ensure_future(worker.run())
        try:
            await until(lambda: feed.mention("m1").state == "answered")
            await asyncio.to_thread(feed.ingest, [post("m2", f"@colossus {tm.UNKNOWN_Q}", author="bob")])
            await until(lambda: feed.mention("m2").state == "answered")
        finally:
            task.cancel()

    asyncio.run(go())
    assert feed.get(reply_id("m1")).text == EXPECTED
    assert feed.get(reply_id("m2")).text == f"@bob {tm.UNKNOWN_A}"


async def until(ok, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


def test_a_mention_of_another_handle_is_failed_not_answered(worker, feed):
    feed.ingest([post("m1", f"@colossus {tm.RECENT_Q}")])  # stored by a feed whose handle was colossus
    feed.handle = "ostra_bot"  # served now under another
    answer_pending(worker)
    m = feed.mention("m1")
    assert (m.state, m.attempts, m.error) == ("failed", 0, "it does not mention @ostra_bot")
    assert feed.get(reply_id("m1")) is None
