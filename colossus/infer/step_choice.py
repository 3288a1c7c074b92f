"""Which forward path an engine step takes on CPU, the C step or PyTorch ops, from how fast each one is on
this machine for this model: timed once, at the first start of an engine of this shape, and cached beside
the compiled kernel.

    times = StepTimes.load_or_measure(path, measure)   # measure(path, rows, prompt) -> seconds
    times.use_c(decode_rows=24, prompt_tokens=0)       # True: the C step is the faster one at 24 rows

A step of the engine feeds every running request's next token (decode rows) and the prompts of newly
admitted requests. Both paths are timed on decode steps of 1, 2, 4, ... rows up to the engine's batch and
on prompts of 16 to PREFILL_TOKENS tokens; a step's time on either path is estimated as the time of its
decode rows plus the time of its prompt tokens, each read off the measured points (linear between two,
proportional beyond the last). PyTorch ops are taken only where they are estimated at least MARGIN
faster: the C step's rows come out the same bits whatever the batch, which PyTorch's matmuls do not
promise, and a near tie is not worth giving that up."""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PATHS = ("c", "torch")
MARGIN = 0.10  # PyTorch ops must be estimated this much faster than the C step to be taken
CONTEXT = 64  # tokens already in a slot when its decode row is timed
REPEATS = 5  # timed calls of each path at each point (interleaved), after one untimed; the median counts


def _points(first: int, factor: int, last: int) -> list[int]:
    """first, first * factor, ... below last, and last itself."""
    points, n = [], first
    while n < last:
        points.append(n)
        n *= factor
    return points + [last]


def decode_points(max_batch: int) -> list[int]:
    """1, 2, 4, ... and max_batch itself."""
    return _points(1, 2, max_batch)


def prompt_points(max_prompt: int) -> list[int]:
    """16, 64, 256, ... below max_prompt, and max_prompt itself."""
    return _points(16, 4, max_prompt)


def _estimate(points: list[int], seconds: list[float], n: int) -> float:
    """The time at n from the measured (points, seconds): linear between two points, proportional to n
    below the first and beyond the last."""
    if n <= 0:
        return 0.0
    i = bisect.bisect_left(points, n)
    if i < len(points) and points[i] == n:
        return seconds[i]
    if i == 0:
        return seconds[0] * n / points[0]
    if i == len(points):
        return seconds[-1] * n / points[-1]
    a, b = points[i - 1], points[i]
    return seconds[i - 1] + (seconds[i] - seconds[i - 1]) * (n - a) / (b - a)


@dataclass
class StepTimes:
    """Seconds of each path (PATHS) at each measured point: decode[path][i] at decode_rows[i] rows,
    prompt[path][i] for a prompt of prompt_tokens[i] tokens."""

    decode_rows: list[int]
    decode: dict[str, list[float]]
    prompt_tokens: list[int]
    prompt: dict[str, list[float]]

    def estimate(self, path: str, decode_rows: int, prompt_tokens: int) -> float:
        return (_estimate(self.decode_rows, self.decode[path], decode_rows)
                + _estimate(self.prompt_tokens, self.prompt[path], prompt_tokens))

    def use_c(self, decode_rows: int, prompt_tokens: int = 0) -> bool:
        c, t = self.estimate("c", decode_rows, prompt_tokens), self.estimate("torch", decode_rows, prompt_tokens)
        return not t < (1 - MARGIN) * c

    def summary(self) -> str:
        """Which path each measured point takes, and the C step's speed-up over PyTorch ops there."""
        def part(label: str, points: list[int], times: dict[str, list[float]], c_at: list[bool]) -> str:
            def nums(ns: list[int]) -> str:
                return ", ".join(map(str, ns))
            on_c = [n for n, c in zip(points, c_at, strict=True) if c]
            on_torch = [n for n, c in zip(points, c_at, strict=True) if not c]
            where = ("the C step" if not on_torch else "PyTorch ops" if not on_c
                     else f"the C step at {nums(on_c)}, PyTorch ops at {nums(on_torch)}")
            ups = ", ".join(f"{t / c:.2f}x" for c, t in zip(times["c"], times["torch"], strict=True))
            return f"{label} {nums(points)}: {where} (C step speed-up {ups})"

        return "; ".join((
            part("decode rows", self.decode_rows, self.decode, [self.use_c(n, 0) for n in self.decode_rows]),
            part("prompt tokens", self.prompt_tokens, self.prompt, [self.use_c(0, n) for n in self.prompt_tokens])))

    def to_json(self) -> dict:
        return {"decode_rows": list(self.decode_rows), "decode": {p: list(self.decode[p]) for p in PATHS},
                "prompt_tokens": list(self.prompt_tokens), "prompt": {p: list(self.prompt[p]) for p in PATHS}}

    @classmethod
    def from_json(cls, d: dict) -> StepTimes:
        t = cls(list(d["decode_rows"]), {p: list(d["decode"][p]) for p in PATHS}, list(d["prompt_tokens"]),
                {p: list(d["prompt"][p]) for p in PATHS})
        for points, times in ((t.decode_rows, t.decode), (t.prompt_tokens, t.prompt)):
            if not points or points != sorted(points) or any(len(times[p]) != len(points) for p in PATHS):
                raise ValueError("points out of order, or not one time per point")
            if any(not s > 0 for p in PATHS for s in times[p]):
                raise ValueError("a time that is not positive")
        return t

    @classmethod
    def measure(cls, run: Callable[[str, int, int], float], max_batch: int, max_prompt: int) -> StepTimes:
        """run(path, decode_rows, prompt_tokens) -> seconds of one step. Each point: both paths once untimed,
        then REPEATS times each, interleaved (a moment's load falls on both), the median of each."""
        def point(rows: int, prompt: int) -> dict[str, float]:
            for path in PATHS:
                run(path, rows, prompt)
            got: dict[str, list[float]] = {p: [] for p in PATHS}
            for _ in range(REPEATS):
                for path in PATHS:
                    got[path].append(run(path, rows, prompt))
            return {p: statistics.median(got[p]) for p in PATHS}

        rows, prompts = decode_points(max_batch), prompt_points(max_prompt)
        dec = [point(n, 0) for n in rows]
        pro = [point(0, n) for n in prompts]
        return cls(rows, {p: [d[p] for d in dec] for p in PATHS}, prompts, {p: [d[p] for d in pro] for p in PATHS})

    @classmethod
    def load_or_measure(cls, path: Path, run: Callable[[str, int, int], float], max_batch: int,
                        max_prompt: int) -> StepTimes:
        """The times cached at path, or measured now (and cached there, atomically)."""
        try:
            return cls.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("step times at %s are unreadable (%s): measuring them again", path, e)
        t0 = time.perf_counter()
        times = cls.measure(run, max_batch, max_prompt)
        log.info("timed the C step and PyTorch ops on this machine in %.1f s (cached in %s)",
                 time.perf_counter() - t0, path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".part", delete=False) as f:
                json.dump(times.to_json(), f)
            os.replace(f.name, path)
        except OSError as e:
            log.warning("step times could not be cached in %s: %s", path, e)
        return times


def cache_key(**parts) -> str:
    """A short hash of what the times depend on (the model's shape, types, threads, torch and its ISA)."""
    env = {k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
                                          "OMP_NUM_THREADS")}
    return hashlib.sha256(json.dumps({**parts, "env": env}, sort_keys=True, default=str).encode()).hexdigest()[:16]
