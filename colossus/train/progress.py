"""The live progress line (step, loss, tokens/s, MFU, ETA) and the same metrics as JSONL."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def fmt_duration(s: float) -> str:
    s = max(0, int(s))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def fmt_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


class MetricsLog:
    """Appends one JSON object per line; on resume, drops lines past the checkpoint's step so a
    resumed run's log reads as if it had never stopped."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in keep))

    def write(self, **row) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


class Progress:
    """Prints a progress line; in a terminal it rewrites one line, in a log it appends lines."""

    def __init__(self, label: str, total_steps: int, stream=None):
        stream = sys.stdout if stream is None else stream  # looked up now: sys.stdout may have been replaced
        self.label, self.total, self.stream = label, total_steps, stream
        self.tty = stream.isatty()

    def update(self, step: int, loss: float, tok_s: float, mfu: float, eta_s: float, extra: str = "") -> None:
        line = (f"{self.label} step {step:>5}/{self.total} | loss {loss:.4f} | {fmt_count(tok_s)} tok/s | "
                f"MFU {100 * mfu:.1f}% | ETA {fmt_duration(eta_s)}{extra}")
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, msg: str) -> None:
        self.stream.write(("\r\033[K" if self.tty else "") + msg + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Throughput:
    """Tokens/s and seconds per step over a sliding window of recent steps."""

    def __init__(self, window: int = 20):
        self.window = window
        self.marks: list[tuple[float, int]] = []

    def mark(self, tokens_so_far: int) -> None:
        self.marks.append((time.perf_counter(), tokens_so_far))
        self.marks = self.marks[-self.window - 1:]

    def tokens_per_s(self) -> float:
        if len(self.marks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return (n1 - n0) / max(t1 - t0, 1e-9)

    def seconds_per_step(self) -> float:
        if len(self.marks) < 2:
            return 0.0
        return (self.marks[-1][0] - self.marks[0][0]) / (len(self.marks) - 1)
