"""The engine-throughput benchmark runs on CPU, checks batched against alone, and prints its table."""

from __future__ import annotations

import re
import sys

import pytest

pytest.importorskip("aiohttp", reason="the benchmark client needs aiohttp (pip install -e '.[dev]')")

from benchmarks import engine_throughput  # noqa: E402


def test_engine_benchmark_checks_batching_and_prints_a_row_per_level(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["engine_throughput.py", "--device", "cpu", "--models", "ref8.7m",
                                      "--concurrency", "1", "2", "--requests", "2", "--output-tokens", "8",
                                      "--skip-peer"])
    engine_throughput.main()
    out = capsys.readouterr().out
    match = re.search(r"matches it alone for (\d+)/(\d+) tokens", out)
    assert match and match.group(1) == match.group(2) == "8"  # on CPU the same bits, batched or not
    rows = [line for line in out.splitlines() if line.startswith("| ref8.7m |")]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "2"]
    assert all(float(r.split("|")[3].replace(",", "")) > 0 for r in rows)
