"""The load generator of benchmarks/serve.py: streams OpenAI requests at a fixed concurrency and turns the
chunk timestamps into the serving metrics of vLLM's benchmark (`vllm bench serve`,
vllm/benchmarks/serve.py calculate_metrics), so our figures read the same as theirs:

- TTFT: from sending the request to the first streamed chunk that carries generated text;
- TPOT: per request, (end-to-end latency - TTFT) / (output tokens - 1), the output tokens read from the
  usage the server reports (a chunk may carry several tokens, so chunks are not counted);
- ITL: every gap between two successive text-carrying chunks of a request, pooled over all requests;
- E2E latency: from sending the request to its last data chunk;
- request and output-token throughput: completed requests and output tokens over the wall time of the
  whole level, from its first request sent to its last response finished.

Each is reported as mean, median and 99th percentile in milliseconds. One deviation from vLLM: vLLM's
chat client takes TTFT at the first chunk with any `choices`, which would count the role-only chunk
that both servers send before generating (transformers sends it before the prompt is even prefilled);
we take the first chunk with text, on both servers alike.

This module knows nothing of either server: it is plain HTTP and server-sent events, through aiohttp as
vLLM's benchmark client. On a small machine the client shares the cores with the server it measures, so
every millisecond it spends is taken from that server, whichever it is. So it is kept light:
- aiohttp, not httpx: a third of the CPU time per streamed token (0.11 against 0.33 ms at 32 streams);
- while a level runs, a stream is only read: each read is kept with its time, and the events are parsed
  when the level is over (parse_stream). An event counts at the time of the read that completed it, which
  is when a line-by-line reader would have seen it too;
- benchmarks/serve.py runs it on uvloop where installed (as our server runs).
Together the last two cut the client's CPU time at 32 streams by about a third (measured: 1.5-1.8 s
against 1.0 s for 12,288 tokens)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np


@dataclass
class RequestResult:
    """What one streamed request measured; times are seconds from sending it."""

    success: bool = False
    error: str = ""
    ttft: float = 0.0
    latency: float = 0.0
    itl: list[float] = field(default_factory=list)
    chunks: int = 0  # text-carrying chunks
    prompt_tokens: int = 0
    output_tokens: int = 0  # from the server's usage
    finish_reason: str | None = None
    reads: list[tuple[float, bytes]] = field(default_factory=list, repr=False)  # (seconds from sending, bytes)


def chunk_text(data: dict) -> str:
    """The generated text of one chunk of /v1/chat/completions (delta.content) or /v1/completions (text)."""
    choices = data.get("choices") or []
    if not choices:
        return ""
    c = choices[0]
    if "delta" in c:
        return (c["delta"] or {}).get("content") or ""
    return c.get("text") or ""


async def stream_request(session: aiohttp.ClientSession, url: str, payload: dict) -> RequestResult:
    """POST one streaming request and keep every read of its body with the time it arrived (the clock
    starts just before sending). Nothing is parsed here: parse_stream does it once the level is over."""
    out = RequestResult()
    st = time.perf_counter()
    clock, reads = time.perf_counter, out.reads
    try:
        async with session.post(url, json=payload) as resp:
            if resp.status != 200:
                body = (await resp.read()).decode("utf-8", "replace")
                out.error = f"HTTP {resp.status}: {body[:300]}"
                return out
            async for data in resp.content.iter_any():  # whatever arrived, no line splitting
                reads.append((clock() - st, data))
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        out.error = f"{type(e).__name__}: {e}"
    return out


def _lines(reads: list[tuple[float, bytes]]):
    """(time, line) for every whole line of the reads, timed by the read that ended it."""
    pending = b""
    for t, data in reads:
        lines = (pending + data).split(b"\n")
        pending = lines.pop()  # a line not yet ended waits for the next read
        for line in lines:
            yield t, line


def parse_stream(out: RequestResult, tokens_from_chunks: bool = False) -> RequestResult:
    """The metrics of a streamed request from its timed reads: every `data:` line is one event, at the time
    of the read that completed the line; the stream ends at `data: [DONE]`. tokens_from_chunks: a server that
    reports no usage when streaming but sends one chunk per token (llama-cpp-python's) has its output tokens
    counted as its text chunks."""
    if out.error:
        return out
    last_text = last_data = 0.0
    for t, raw in _lines(out.reads):
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        chunk = line[5:].strip()
        if chunk == b"[DONE]":
            break
        try:
            obj = json.loads(chunk)
        except json.JSONDecodeError as e:
            out.error = f"JSONDecodeError: {e}"
            return out
        if "error" in obj:
            out.error = f"stream error: {str(obj['error'])[:300]}"
            return out
        last_data = t
        if chunk_text(obj):
            if out.chunks == 0:
                out.ttft = t
            else:
                out.itl.append(t - last_text)
            last_text = t
            out.chunks += 1
        for c in obj.get("choices") or []:
            out.finish_reason = c.get("finish_reason") or out.finish_reason
        if usage := obj.get("usage"):
            out.output_tokens = int(usage.get("completion_tokens") or 0)
            out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    out.latency = last_data
    if out.chunks == 0:
        out.error = "no chunk with text arrived"
    elif out.output_tokens == 0 and tokens_from_chunks:
        out.output_tokens, out.success = out.chunks, True
    elif out.output_tokens == 0:
        out.error = "the server reported no usage (completion_tokens)"
    else:
        out.success = True
    return out


async def run_level(url: str, payloads: list[dict], concurrency: int, timeout_s: float = 600.0,
                    tokens_from_chunks: bool = False) -> tuple[list[RequestResult], float]:
    """Send every payload, at most `concurrency` in flight at once (as vLLM's --max-concurrency with an
    infinite request rate); returns the results in payload order, parsed after the last one finished, and
    the level's wall time."""
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        async def one(p: dict) -> RequestResult:
            async with sem:
                return await stream_request(session, url, p)

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(p) for p in payloads))
        duration = time.perf_counter() - t0
    return [parse_stream(r, tokens_from_chunks) for r in results], duration


def run_async(coro):
    """Run a coroutine on uvloop where it is installed (lighter per read), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _stats(values: list[float], name: str) -> dict[str, float]:
    """mean / median / p99 in milliseconds (numpy's linear percentile, as vLLM)."""
    if not values:
        return {f"mean_{name}_ms": float("nan"), f"median_{name}_ms": float("nan"), f"p99_{name}_ms": float("nan")}
    a = np.asarray(values) * 1000.0
    return {f"mean_{name}_ms": float(a.mean()), f"median_{name}_ms": float(np.median(a)),
            f"p99_{name}_ms": float(np.percentile(a, 99))}


def summarize(results: list[RequestResult], duration_s: float) -> dict:
    """The level's metrics, as vLLM's calculate_metrics computes them."""
    ok = [r for r in results if r.success]
    tpots = [(r.latency - r.ttft) / (r.output_tokens - 1) for r in ok if r.output_tokens > 1]
    itls = [g for r in ok for g in r.itl]
    total_out = sum(r.output_tokens for r in ok)
    errors = sorted({r.error for r in results if not r.success})
    return {
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": errors[:5],
        "duration_s": duration_s,
        "total_input_tokens": sum(r.prompt_tokens for r in ok),
        "total_output_tokens": total_out,
        "output_tokens_per_request": sorted({r.output_tokens for r in ok}),
        "mean_chunks_per_request": float(np.mean([r.chunks for r in ok])) if ok else 0.0,
        "request_throughput": len(ok) / duration_s if duration_s > 0 else 0.0,
        "output_throughput": total_out / duration_s if duration_s > 0 else 0.0,
        **_stats([r.ttft for r in ok], "ttft"),
        **_stats(tpots, "tpot"),
        **_stats(itls, "itl"),
        **_stats([r.latency for r in ok], "e2el"),
    }
