"""The line above every CPU benchmark's table names the CPU, the C step's vector code, torch's, and the peak."""

from __future__ import annotations

import platform

import pytest
import torch

from benchmarks.cpu_header import cpu_facts, describe
from colossus.infer.cpu_decode import FLAGS_ENV, load_kernel


def test_the_header_names_the_cpu_the_builds_and_the_peak():
    f = cpu_facts(1)
    assert f["matmul_peak"] > 0 and f["peak_threads"] == 1 and torch.get_num_threads() >= 1
    line = describe(f)
    assert line.startswith(f"CPU: {f['cpu']}, {f['cores']} cores, {f['cpu_isa']}; C step: ")
    assert f"torch ops: {f['torch_isa']}" in line and "on 1 thread(s)" in line


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="AVX2 is x86")
def test_extra_flags_from_the_environment_name_the_build_measured(monkeypatch):
    if load_kernel() is None:
        pytest.skip("no C compiler on this machine")
    monkeypatch.setenv(FLAGS_ENV, "-mno-avx512f")
    assert "C step: AVX2 (16 x 256-bit registers; 5 rows x 16 outputs per matmul block)" in describe(cpu_facts(1))
    assert describe(cpu_facts(1)).count("-mno-avx512f") == 1
