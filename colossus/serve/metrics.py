"""GET /metrics in the Prometheus text exposition format (version 0.0.4), written by hand: a few
counters, one histogram and the engine's gauges do not need a client library.

The HTTP counts are recorded by a middleware, labelled by route template (/v1/conversations/{cid},
not each id) so the number of series stays bounded; the token counts, queue, running requests, KV
cache and prefix cache come from Engine.stats() at scrape time, and the mentions of the assistant by state
from the feed's store (colossus.feed.store: they are durable, so they survive a restart)."""

from __future__ import annotations

import math
import threading
from collections import defaultdict

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, math.inf)

ENGINE_METRICS = (  # (metric, type, Engine.stats() key, help)
    ("colossus_prompt_tokens_total", "counter", "prompt_tokens_total", "Prompt tokens processed."),
    ("colossus_generation_tokens_total", "counter", "generation_tokens_total", "Tokens generated."),
    ("colossus_requests_waiting", "gauge", "waiting", "Requests in the engine's queue."),
    ("colossus_requests_running", "gauge", "running", "Requests being generated."),
    ("colossus_kv_cache_usage_ratio", "gauge", "kv_usage", "Fraction of the KV cache in use (0..1)."),
    ("colossus_kv_cache_used_tokens", "gauge", "kv_used_tokens", "KV cache slots in use, in tokens."),
    ("colossus_kv_cache_total_tokens", "gauge", "kv_total_tokens", "KV cache size, in tokens."),
    ("colossus_prefix_cache_tokens", "gauge", "prefix_cache_tokens", "Tokens held by the prefix cache."),
    ("colossus_prefix_cache_hit_tokens_total", "counter", "prefix_hit_tokens_total",
     "Prompt tokens whose KV came from the prefix cache."),
    ("colossus_requests_finished_total", "counter", "requests_finished_total", "Engine requests finished."),
    ("colossus_requests_aborted_total", "counter", "requests_aborted_total", "Engine requests aborted."),
    ("colossus_engine_steps_total", "counter", "steps_total", "Steps of the engine loop (one forward pass each)."),
    ("colossus_engine_c_steps_total", "counter", "c_steps_total", "Engine steps whose forward pass was the C step."),
    ("colossus_engine_torch_steps_total", "counter", "torch_steps_total",
     "Engine steps whose forward pass was PyTorch ops."),
)


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.ttft_counts = [0] * len(TTFT_BUCKETS)
        self.ttft_sum = 0.0
        self.ttft_n = 0
        self.tool_calls: dict[str, int] = defaultdict(int)  # by tool ("invalid": a call that named none)
        self.citations = 0
        self.bad_citations = 0
        self.sources = 0

    def count_answer(self, tools: list[str], citations: int, bad_citations: int, sources: int) -> None:
        """One assistant answer: its tool calls, the citations it kept, those it dropped (they named no post
        retrieved for it) and the posts it read."""
        with self.lock:
            for t in tools:
                self.tool_calls[t or "invalid"] += 1
            self.citations += citations
            self.bad_citations += bad_citations
            self.sources += sources

    def count_request(self, endpoint: str, status: int) -> None:
        with self.lock:
            self.requests[(endpoint, status)] += 1

    def observe_ttft(self, seconds: float) -> None:
        with self.lock:
            for i, bound in enumerate(TTFT_BUCKETS):
                if seconds <= bound:
                    self.ttft_counts[i] += 1
                    break
            self.ttft_sum += seconds
            self.ttft_n += 1

    def render(self, engine_stats: dict | None, model_loaded: bool, mentions: dict[str, int] | None = None) -> str:
        """mentions: how many mentions of the assistant are in each state (pending, answered, failed)."""
        out = ["# HELP colossus_http_requests_total HTTP requests answered, by route and status.",
               "# TYPE colossus_http_requests_total counter"]
        with self.lock:
            for (endpoint, status), n in sorted(self.requests.items()):
                out.append(f'colossus_http_requests_total{{endpoint="{_escape(endpoint)}",status="{status}"}} {n}')
            out += ["# HELP colossus_time_to_first_token_seconds Time from request to its first generated token.",
                    "# TYPE colossus_time_to_first_token_seconds histogram"]
            cumulative = 0
            for bound, n in zip(TTFT_BUCKETS, self.ttft_counts, strict=True):
                cumulative += n
                le = "+Inf" if math.isinf(bound) else repr(bound)
                out.append(f'colossus_time_to_first_token_seconds_bucket{{le="{le}"}} {cumulative}')
            out.append(f"colossus_time_to_first_token_seconds_sum {self.ttft_sum!r}")
            out.append(f"colossus_time_to_first_token_seconds_count {self.ttft_n}")
            out += ["# HELP colossus_tool_calls_total Tool calls of assistant answers, by tool.",
                    "# TYPE colossus_tool_calls_total counter"]
            out += [f'colossus_tool_calls_total{{tool="{_escape(t)}"}} {n}' for t, n in sorted(self.tool_calls.items())]
            for name, value, help_text in (
                    ("colossus_citations_total", self.citations, "Citations in answers, each of a retrieved post."),
                    ("colossus_bad_citations_total", self.bad_citations,
                     "Citation markers dropped from answers: they named no post retrieved for that answer."),
                    ("colossus_search_sources_total", self.sources, "Posts that searches put before the model.")):
                out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
        out += ["# HELP colossus_model_loaded 1 once the model is loaded and the engine runs.",
                "# TYPE colossus_model_loaded gauge", f"colossus_model_loaded {int(model_loaded)}"]
        stats = engine_stats or {}
        for name, kind, key, help_text in ENGINE_METRICS:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {_number(stats.get(key, 0))}"]
        if mentions is not None:
            out += ["# HELP colossus_mentions Posts of the feed that mention the assistant, by state (pending, "
                    "answered, failed).", "# TYPE colossus_mentions gauge"]
            out += [f'colossus_mentions{{state="{_escape(s)}"}} {n}' for s, n in sorted(mentions.items())]
        return "\n".join(out) + "\n"


def _number(v) -> str:
    return repr(float(v)) if isinstance(v, float) else str(int(v))


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_metrics(text: str) -> dict[str, float]:
    """'name{labels} value' lines -> {'name{labels}': value}; for tests and the benchmark client."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class MetricsMiddleware:
    """Counts every answer (401, 413 and 429 included) by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes_of):
        self.app, self.metrics, self.routes_of = app, metrics, routes_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = self.endpoint(scope)
        status = 500  # what the client sees if nothing is sent (ServerErrorMiddleware answers 500)

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.count_request(endpoint, status)

    def endpoint(self, scope: Scope) -> str:
        for route in self.routes_of():
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", None) or "other"
        return "other"
