"""The decode-step benchmark runs, checks every step against forward, and prints its table."""

from __future__ import annotations

import sys

import torch

from benchmarks import decode_step
from colossus.infer.cpu_decode import load_kernel


def test_decode_step_benchmark_prints_a_row_per_batch(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["decode_step.py", "--steps", "1"])
    threads = torch.get_num_threads()
    try:
        decode_step.main()
    finally:
        torch.set_num_threads(threads)  # the benchmark sets its own
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("CPU: ") and "float32 matmul peak" in lines[0] and " C step: " in lines[0]
    header = next(line for line in lines if line.startswith("| rows"))
    ways = 5 if load_kernel() is not None else 2  # forward, decode_step, and the C step three ways
    assert header.count("speed-up") == ways - 1
    rows = [line for line in lines if line.startswith("| ") and line.rstrip().endswith("x |")]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "8", "32"]
    for r in rows:
        cells = [c.strip() for c in r.strip().strip("|").split("|")]
        assert len(cells) == 1 + 2 * ways + ways - 1
        assert all(float(c.rstrip("x").replace(",", "")) > 0 for c in cells[1:])
    if load_kernel() is not None:  # how much of the 32-row step is matmul, and how near the peak
        shares = [line for line in lines if " at 32 rows: " in line]
        assert [line.split(" at ")[0] for line in shares] == ["C float32", "C bfloat16"]
        assert all("% of the matmul peak" in line for line in shares)
