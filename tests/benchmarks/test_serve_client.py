"""The serving benchmark's client: it must parse both OpenAI stream formats, time chunks as vLLM's
benchmark does (an event at the read that completed it, though parsed after the level), and count tokens
from usage rather than from chunks."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the benchmark client needs aiohttp (pip install -e '.[dev]')")

from aiohttp import web  # noqa: E402

from benchmarks.serve_client import (  # noqa: E402
    RequestResult,
    chunk_text,
    parse_stream,
    run_async,
    run_level,
    stream_request,
    summarize,
)


def sse(objs: list[dict | str]) -> list[bytes]:
    return [f"data: {o if isinstance(o, str) else json.dumps(o)}\n\n".encode() for o in objs]


def chat_chunks(texts: list[str], completion_tokens: int) -> list[dict | str]:
    """What an OpenAI server streams: a role-only chunk, text chunks, then finish and usage, [DONE]."""
    out: list[dict | str] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    out += [{"choices": [{"index": 0, "delta": {"content": t}}]} for t in texts]
    out.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    out.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": completion_tokens}})
    return out + ["[DONE]"]


def paced_server(events: list[bytes], gap_s: float, first_s: float, status: int = 200):
    """A server that sends the first event at once (the role chunk, as transformers does), waits first_s
    before the second and gap_s between the later ones: a handler for serve()."""
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i, e in enumerate(events):
            if i == 1:
                await asyncio.sleep(first_s)
            elif i > 1:
                await asyncio.sleep(gap_s)
            await resp.write(e)
        await resp.write_eof()
        return resp

    return handler


def split_server(parts: list[bytes], after: int, pause_s: float):
    """A server that sends parts[:after + 1] at once, pauses, then the rest: parts[after + 1] ends a line
    that parts[after] began."""
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i, part in enumerate(parts):
            if i == after + 1:
                await asyncio.sleep(pause_s)
            await resp.write(part)
        await resp.write_eof()
        return resp

    return handler


def answer(status: int, body: bytes):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body)

    return handler


def run(coro):
    return asyncio.run(coro)


async def one(handler) -> RequestResult:
    """One streamed request to a real HTTP server on 127.0.0.1 that answers with handler."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    try:
        async with aiohttp.ClientSession() as session:
            return parse_stream(await stream_request(session, f"http://127.0.0.1:{port}/v1/chat/completions",
                                                     {"stream": True}))
    finally:
        await runner.cleanup()


def test_ttft_skips_the_role_chunk_and_itl_is_the_gap_between_text_chunks():
    events = sse(chat_chunks(["a", "b", "c", "d"], completion_tokens=4))
    r = run(one(paced_server(events, gap_s=0.03, first_s=0.12)))
    assert r.success, r.error
    assert r.ttft >= 0.12  # the empty role chunk arrived at once and must not count
    assert r.chunks == 4 and len(r.itl) == 3
    assert all(g >= 0.025 for g in r.itl)
    assert r.output_tokens == 4 and r.prompt_tokens == 7 and r.finish_reason == "length"
    assert r.latency >= r.ttft + sum(r.itl)  # the end is the last data chunk (usage), after the last text


def test_an_event_split_across_reads_counts_when_its_last_part_arrives():
    events = sse(chat_chunks(["a", "b"], completion_tokens=2))
    first_text = events[1]
    halves = [events[0], first_text[:9], first_text[9:], *events[2:]]  # the first text event cut in two
    r = run(one(split_server(halves, after=1, pause_s=0.15)))
    assert r.success, r.error
    assert len(r.reads) >= 2  # the halves came in separate reads
    assert r.ttft >= 0.15 and r.chunks == 2 and r.output_tokens == 2


def test_tokens_come_from_usage_when_a_chunk_carries_several():
    events = sse(chat_chunks(["two tokens", "three more"], completion_tokens=5))
    r = run(one(paced_server(events, gap_s=0.0, first_s=0.0)))
    assert r.success and r.chunks == 2 and r.output_tokens == 5


def test_completions_format_is_read_too():
    assert chunk_text({"choices": [{"index": 0, "text": "hi", "finish_reason": None}]}) == "hi"
    assert chunk_text({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}) == ""
    assert chunk_text({"choices": [], "usage": {"completion_tokens": 3}}) == ""


@pytest.mark.parametrize("status,body,expect", [
    (422, b'{"detail": "Unexpected fields"}', "HTTP 422"),
    (200, b'data: {"error": "worker died"}\n\n', "stream error"),
    (200, b"data: " + json.dumps(chat_chunks(["x"], 1)[1]).encode() + b"\n\ndata: [DONE]\n\n", "no usage"),
    (200, b"data: [DONE]\n\n", "no chunk with text"),
])
def test_failures_are_reported_not_counted(status, body, expect):
    r = run(one(answer(status, body)))
    assert not r.success and expect in r.error


def test_summarize_follows_vllm_definitions():
    a = RequestResult(success=True, ttft=0.1, latency=0.1 + 0.02 * 63, itl=[0.02] * 63, chunks=64,
                      prompt_tokens=40, output_tokens=64)
    b = RequestResult(success=True, ttft=0.3, latency=0.3 + 0.04 * 63, itl=[0.04] * 63, chunks=64,
                      prompt_tokens=50, output_tokens=64)
    failed = RequestResult(error="HTTP 503: busy")
    m = summarize([a, b, failed], duration_s=4.0)
    assert m["completed"] == 2 and m["failed"] == 1 and m["errors"] == ["HTTP 503: busy"]
    assert m["total_output_tokens"] == 128 and m["total_input_tokens"] == 90
    assert m["output_throughput"] == pytest.approx(32.0) and m["request_throughput"] == pytest.approx(0.5)
    assert m["mean_tpot_ms"] == pytest.approx(30.0)  # (e2e - ttft) / (tokens - 1) per request, then averaged
    assert m["median_ttft_ms"] == pytest.approx(200.0)
    assert m["mean_itl_ms"] == pytest.approx(30.0)  # pooled gaps: 63 of 20 ms and 63 of 40 ms
    assert m["p99_itl_ms"] == pytest.approx(40.0)
    assert m["output_tokens_per_request"] == [64]


def test_run_level_never_exceeds_the_concurrency(monkeypatch):
    in_flight, peak = 0, 0

    async def fake(client, url, payload):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        body = b"".join(sse(chat_chunks(["x"], completion_tokens=payload["i"] + 1)))
        return RequestResult(reads=[(0.01, body)])

    monkeypatch.setattr("benchmarks.serve_client.stream_request", fake)
    results, dur = run_async(run_level("http://test", [{"i": i} for i in range(10)], concurrency=3))
    assert peak == 3 and dur > 0
    assert all(r.success for r in results)  # parsed once the level is over
    assert [r.output_tokens for r in results] == list(range(1, 11))  # in payload order


def test_a_server_without_streamed_usage_counts_one_token_a_chunk_only_when_told():
    """llama-cpp-python's server streams one token a chunk and no usage: benchmarks/serve_real.py says so."""
    events = sse(chat_chunks(["a", "b", "c"], completion_tokens=3)[:-2] + ["[DONE]"])  # no usage chunk
    r = run(one(paced_server(events, gap_s=0.0, first_s=0.0)))
    assert not r.success and "no usage" in r.error
    counted = parse_stream(RequestResult(reads=r.reads), tokens_from_chunks=True)
    assert counted.success and counted.output_tokens == 3
