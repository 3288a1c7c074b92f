"""benchmarks/serve_real.py's report: the issue's two targets read from the measured rows."""

from __future__ import annotations

import pytest

pytest.importorskip("aiohttp", reason="the benchmark client needs aiohttp (pip install -e '.[dev]')")

from benchmarks.serve_real import markdown, targets  # noqa: E402


def row(server: str, weights: str, conc: int, tok_s: float) -> dict:
    return {"server": server, "weights": weights, "concurrency": conc, "requests": conc, "completed": conc,
            "output_throughput": tok_s, "median_ttft_ms": 10.0, "p99_ttft_ms": 12.0, "median_tpot_ms": 5.0,
            "p99_tpot_ms": 6.0, "output_tokens_per_request": [64], "server_peak_rss_mb": 100.0}


def test_targets_compare_ours_with_llama_cpp_on_the_16_bit_file_and_the_best_peer_at_the_top_level():
    rows = [row("colossus", "f16 file, float32", 1, 60.0), row("colossus", "f16 file, bfloat16", 1, 130.0),
            row("colossus", "f16 file, bfloat16", 32, 1000.0), row("llama.cpp", "f16 file", 1, 100.0),
            row("llama.cpp", "q4_1 file", 1, 90.0), row("llama.cpp", "f16 file", 32, 90.0),
            row("transformers", "float32 folder", 32, 150.0)]
    t = targets(rows)
    assert t["ours_over_llama_cpp_f16_c1"] == pytest.approx(1.3)  # the best of ours, against the same bits
    assert t["best_peer_c32"] == ("transformers (float32 folder)", 150.0)
    assert t["ours_over_best_peer_c32"] == pytest.approx(1000 / 150)
    assert markdown(rows).count("\n") == len(rows) + 1
