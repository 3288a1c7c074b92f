"""A bounded load test: 64 concurrent streaming clients, a quarter of them hanging up mid-stream.

Every other request must complete without error, the hung-up ones must be aborted in the engine, and
the KV cache reported by /metrics must return to its idle level."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from colossus.serve.metrics import parse_metrics

CLIENTS, HANG_UPS, TOKENS = 64, 16, 24


async def metrics(c: httpx.AsyncClient) -> dict[str, float]:
    return parse_metrics((await c.get("/metrics")).text)


async def stream_one(c: httpx.AsyncClient, i: int, hang_up: bool) -> dict:
    body = {"messages": [{"role": "user", "content": f"Question number {i}: where is Sitor Vale?"}],
            "max_tokens": 100 if hang_up else TOKENS, "ignore_eos": True, "stream": True, "seed": i,
            "stream_options": {"include_usage": True}}
    chunks, done = [], False
    async with c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200, await r.aread()
        async for line in r.aiter_lines():
            if not line:
                continue
            assert line.startswith("data: ")
            if line == "data: [DONE]":
                done = True
                break
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            chunks.append(chunk)
            if hang_up and len(chunks) == 3:
                break  # leaving the block closes the connection mid-stream
    return {"chunks": chunks, "done": done}


def test_many_streams_with_hang_ups(server_url):
    async def scenario():
        limits = httpx.Limits(max_connections=CLIENTS + 8, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server_url, timeout=60, limits=limits) as c:
            idle = await metrics(c)
            results = await asyncio.gather(*(stream_one(c, i, i % 4 == 0) for i in range(CLIENTS)))
            # the engine notices the hang-ups within a step or two; wait for it to drain
            deadline = time.monotonic() + 20
            while True:
                after = await metrics(c)
                drained = after["colossus_requests_running"] == 0 and after["colossus_requests_waiting"] == 0
                if drained and after["colossus_kv_cache_used_tokens"] == idle["colossus_kv_cache_used_tokens"]:
                    break
                assert time.monotonic() < deadline, (idle, after)
                await asyncio.sleep(0.05)
            return idle, after, results

    idle, after, results = asyncio.run(scenario())
    completed = [r for i, r in enumerate(results) if i % 4]
    assert len(completed) == CLIENTS - HANG_UPS
    for r in completed:
        assert r["done"]
        usage = r["chunks"][-1]["usage"]
        assert usage["completion_tokens"] == TOKENS and r["chunks"][-1]["choices"] == []
        assert r["chunks"][-2]["choices"][0]["finish_reason"] == "length"
    aborted = after["colossus_requests_aborted_total"] - idle["colossus_requests_aborted_total"]
    finished = after["colossus_requests_finished_total"] - idle["colossus_requests_finished_total"]
    assert 1 <= aborted <= HANG_UPS  # a hang-up that came after its last token finished normally
    assert finished + aborted == CLIENTS
    assert after["colossus_kv_cache_usage_ratio"] == idle["colossus_kv_cache_usage_ratio"]


def test_a_waiting_client_that_hangs_up_is_aborted(live_server, engine_at):
    """Not streamed: the server notices the closed connection while the request waits, and aborts it
    (max_batch=1: it waits behind a first request, and the engine is held, so neither can finish first)."""
    body = {"messages": [{"role": "user", "content": "Where is Sitor Vale?"}], "max_tokens": 50, "ignore_eos": True}
    with live_server(max_batch=1) as url:
        engine = engine_at(url)

        async def scenario():
            async with httpx.AsyncClient(base_url=url, timeout=120) as c:
                idle = await metrics(c)
                engine.pause()
                first = asyncio.ensure_future(c.post("/v1/chat/completions", json=body))
                await until(lambda: engine.stats()["waiting"] == 1, "the first request is waiting")
                engine.resume(1)
                await asyncio.to_thread(engine.wait_held)  # the first runs, held after its first token
                try:  # the second waits behind the first; give up on it at once
                    await c.post("/v1/chat/completions", json=body, timeout=0.05)
                    raise AssertionError("the second request finished while the engine was held")
                except httpx.TimeoutException:
                    pass
                await until(lambda: engine.stats()["waiting"] == 0, "the server aborted the waiting request")
                engine.resume()
                assert (await first).status_code == 200
                await until(lambda: engine.stats()["running"] == 0, "the first request finished")
                return idle, await metrics(c)

        idle, after = asyncio.run(scenario())
        assert after["colossus_requests_aborted_total"] - idle["colossus_requests_aborted_total"] == 1
        assert after["colossus_requests_finished_total"] - idle["colossus_requests_finished_total"] == 1
        assert after["colossus_kv_cache_used_tokens"] == 0


async def until(condition, what: str, timeout: float = 120.0) -> None:
    """Yield until condition() holds (the timeout bounds a broken server, it is not a speed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.005)
