"""The batch-scaling benchmark: its ceilings follow from the step times, and it prints a row per way."""

from __future__ import annotations

import sys

import pytest
import torch

from benchmarks import batch_scaling
from colossus.infer.cpu_decode import load_kernel


def test_ceilings_follow_from_the_step_times():
    # one row 1 ms, 32 rows 4 ms, a prompt alone 3 ms, a prompt joining 32 rows 10 ms (so it adds 6 ms)
    c = batch_scaling.ceilings({"t1": 1e-3, "t32": 4e-3, "p1": 3e-3, "p32": 10e-3})
    assert c["c1"] == pytest.approx(64 / (3e-3 + 63e-3))
    assert c["c32"] == pytest.approx(32 * 64 / (64 * 4e-3 + 32 * 6e-3))
    assert c["ratio"] == pytest.approx(c["c32"] / c["c1"])
    assert c["decode_ratio"] == pytest.approx(8.0)  # 32 rows in 4x the time of one


@pytest.mark.skipif(load_kernel() is None, reason="needs a C compiler")
def test_benchmark_prints_a_row_per_way(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["batch_scaling.py", "--rounds", "1", "--steps", "1", "--threads", "1"])
    threads = torch.get_num_threads()
    try:
        batch_scaling.main()
    finally:
        torch.set_num_threads(threads)  # the benchmark sets its own
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("CPU: ") and "float32 matmul peak" in out[0]
    rows = [line for line in out if line.startswith("| float32") or line.startswith("| bfloat16")]
    assert [tuple(c.strip() for c in r.split("|")[1:3]) for r in rows] == list(batch_scaling.WAYS)
    for r in rows:
        cells = [c.strip() for c in r.strip().strip("|").split("|")][2:]
        assert len(cells) == 10 and all(float(c.rstrip("x").replace(",", "")) > 0 for c in cells)
