"""The training-step benchmark runs ours and the HF Llama and prints its table (eagerly: compiling both models
would take most of a minute here; the trainer's tests cover torch.compile)."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("transformers", reason="the peer is HF Llama: pip install -e '.[bench]'")

from benchmarks import train_step  # noqa: E402


def test_train_step_benchmark_prints_a_row_per_contender(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["train_step.py", "--preset", "tiny", "--steps", "1", "--rounds", "1",
                                      "--no-compile"])
    train_step.main()
    out = capsys.readouterr().out
    assert "machine: " in out and "matmul peak" in out
    table = [line for line in out.splitlines() if line.startswith("| ") and line.rstrip().endswith("x |")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table]
    assert [c[0] for c in cells] == ["colossus GPT", "HF Llama"]
    assert all(float(c[1].replace(",", "")) > 0 and c[2].endswith("%") for c in cells)
    assert cells[1][3] == "1.00x"  # the peer against itself
