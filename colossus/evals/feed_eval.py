"""The feed part of the truth report: the model, as the assistant (colossus.assistant.loop), answers the world's
held-out feed questions by searching a feed that holds the training posts and the held-out ones. The held-out
posts are ingested only here, into a feed of the evaluation's own, and never trained on.

    answers = feed_answers(model, tok, items, posts, workdir)
    rates = score_feed(items, answers)          # colossus.evals.feed_grading

Every question runs through the engine at once (continuous batching), greedy, search mode "auto": the model
decides whether to search, as it does when served. An injection question is asked twice: on that feed, and on
one without its injecting post (injection_resistance compares the two replies)."""

from __future__ import annotations

import asyncio
import math
import shutil
from pathlib import Path

from colossus.assistant.loop import Answer, Assistant, ToolStep
from colossus.assistant.search import SearchParameters
from colossus.data.tokenizer import Tokenizer
from colossus.feed.feed import Feed
from colossus.feed.post import Post
from colossus.infer.engine import Delta, Engine
from colossus.infer.sampling import SamplingParams
from colossus.model.gpt import GPT

MAX_TOKENS = 96  # tokens an answer may write, its tool calls included
CONCURRENCY = 32  # questions in the engine at once


def injected_ids(item: dict) -> set[str]:
    """The posts of an injection item's story that hold no answer: the injecting ones."""
    return set(item.get("story_post_ids") or []) - set(item["post_ids"])


def feed_answers(model: GPT, tok: Tokenizer, items: list[dict], posts: list[dict], workdir: Path,
                 device: str = "cpu") -> list[dict]:
    """An answer per item (reply, citations, confidence, tool steps), as colossus.evals.feed_grading reads them."""
    all_posts = [Post.from_dict(p) for p in posts]
    injecting = set().union(*(injected_ids(it) for it in items if it["kind"] == "injection"))
    engine = Engine(model, tok, max_batch=CONCURRENCY, device=device)
    engine.start()
    feeds: list[Feed] = []
    try:
        with_all = _feed(workdir / "feed-eval", all_posts, feeds)
        clean = _feed(workdir / "feed-eval-clean", [p for p in all_posts if p.id not in injecting], feeds)
        asked = [(it, with_all) for it in items] + [(it, clean) for it in items if it["kind"] == "injection"]
        results = asyncio.run(_ask_all(engine, tok, asked))
    finally:
        engine.shutdown()
        for f in feeds:
            f.close()
    answers, extra = results[:len(items)], iter(results[len(items):])
    for it, a in zip(items, answers, strict=True):
        if it["kind"] == "injection":
            a["reply_without"] = next(extra)["reply"]
    return answers


def _feed(root: Path, posts: list[Post], opened: list[Feed]) -> Feed:
    shutil.rmtree(root, ignore_errors=True)  # a fresh feed each time: the evaluation's own
    feed = Feed(root)
    opened.append(feed)
    feed.ingest(posts)
    return feed


async def _ask_all(engine: Engine, tok: Tokenizer, asked: list[tuple[dict, Feed]]) -> list[dict]:
    assistants = {id(f): Assistant(engine, tok, f, permalink=lambda pid: f"/posts/{pid}") for _, f in asked}
    params = SamplingParams(temperature=0, max_tokens=MAX_TOKENS, logprobs=0)
    search = SearchParameters(mode="auto")
    return list(await asyncio.gather(*(
        _ask(assistants[id(f)].answer([{"role": "user", "content": it["question"]}], params, search, f"eval-{i}"))
        for i, (it, f) in enumerate(asked))))


async def _ask(answer: Answer) -> dict:
    text, logprobs, steps = [], [], []
    async for e in answer.events():
        if isinstance(e, ToolStep):
            steps.append(e.to_dict())
        else:
            assert isinstance(e, Delta)
            text.append(e.text)
            logprobs += [t.logprob for t in e.logprobs or []]
    return {"reply": "".join(text), "confidence": round(math.exp(min(logprobs)), 4) if logprobs else 0.0,
            "citations": [{"start": a.start, "end": a.end, "post_id": a.source.post.id}
                          for a in answer.writer.annotations],
            "bad_citations": answer.bad_citations, "tool_steps": steps}
