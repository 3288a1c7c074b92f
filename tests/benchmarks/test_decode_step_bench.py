"""The decode-step benchmark runs, checks the packed step against forward, and prints its table."""

from __future__ import annotations

import sys

import torch

from benchmarks import decode_step


def test_decode_step_benchmark_prints_a_row_per_batch(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["decode_step.py", "--steps", "1"])
    threads = torch.get_num_threads()
    try:
        decode_step.main()
    finally:
        torch.set_num_threads(threads)  # the benchmark sets its own
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "x |" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "8", "32"]
    assert all(float(r.split("|")[6].strip().rstrip("x")) > 0 for r in rows)
