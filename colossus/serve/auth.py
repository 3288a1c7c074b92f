"""API keys and a per-key rate limit, checked before any route runs.

Keys come from `--api-key` (repeatable) and the environment variable COLOSSUS_API_KEY (comma-separated).
With keys set, /v1/* and /tokenize need `Authorization: Bearer KEY`; /health, /metrics and the web page
stay open. With no key the server is open. Keys are compared in constant time, and only their SHA-256
digests are kept in memory beyond startup, so no key can reach a log or an error message.

The rate limit is a token bucket per key (per client address on an open server): N requests a minute,
bursts of up to N, on the routes that run the model (completions and tokenize). Over it, 429 with
Retry-After in seconds."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import threading
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from colossus.errors import ColossusError
from colossus.serve.errors import APIError

PROTECTED = ("/v1/", "/tokenize")
RATE_LIMITED = ("/v1/chat/completions", "/v1/completions", "/tokenize")


def keys_from(cli_keys: Iterable[str] | None, env_value: str | None) -> list[str]:
    keys = [k.strip() for k in (cli_keys or [])]
    keys += [k.strip() for k in (env_value or "").split(",")]
    return [k for k in dict.fromkeys(keys) if k]


def parse_rate(text: str | None) -> float | None:
    """'60/min' or '60' -> 60.0 requests a minute; None -> no limit."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*min)?\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise ColossusError(f"--rate-limit must look like 60/min (requests a minute, > 0), not {text!r}")
    return float(m.group(1))


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class TokenBucket:
    """capacity tokens, refilled at rate per second; take() answers the seconds to wait (0: allowed)."""

    def __init__(self, capacity: float, rate: float, clock=time.monotonic):
        self.capacity, self.rate, self.clock = capacity, rate, clock
        self.tokens, self.stamp = capacity, clock()

    def take(self) -> float:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    def __init__(self, per_minute: float, clock=time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self.buckets: dict[bytes, TokenBucket] = {}
        self.lock = threading.Lock()

    def wait_for(self, who: bytes) -> float:
        with self.lock:
            bucket = self.buckets.get(who)
            if bucket is None:
                bucket = self.buckets[who] = TokenBucket(self.per_minute, self.per_minute / 60, self.clock)
            return bucket.take()


class AccessMiddleware:
    """Answers 401 / 429 before the app sees the request."""

    def __init__(self, app: ASGIApp, keys: Iterable[str] = (), rate_per_minute: float | None = None):
        self.app = app
        self.digests = [digest(k) for k in keys]
        self.limiter = RateLimiter(rate_per_minute) if rate_per_minute else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        who = b""
        if self.digests and path.startswith(PROTECTED):
            who = self.authenticate(scope)
            if not who:
                return await APIError(401, "missing or invalid API key: send `Authorization: Bearer KEY`",
                                      code="invalid_api_key",
                                      headers={"WWW-Authenticate": "Bearer"}).response()(scope, receive, send)
        if self.limiter is not None and path in RATE_LIMITED:
            who = who or digest((scope.get("client") or ("?",))[0])
            wait = self.limiter.wait_for(who)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                return await APIError(429, f"rate limit of {self.limiter.per_minute:g} requests a minute reached; "
                                      f"retry in {retry} s", code="rate_limit_exceeded",
                                      headers={"Retry-After": str(retry)}).response()(scope, receive, send)
        await self.app(scope, receive, send)

    def authenticate(self, scope: Scope) -> bytes:
        """The digest of a valid key, or b''."""
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return b""
        d = digest(token.strip())
        ok = False
        for known in self.digests:  # no early exit: the time taken does not tell which key matched
            ok |= hmac.compare_digest(d, known)
        return d if ok else b""
