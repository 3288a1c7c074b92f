"""What the CPU benchmarks' figures hold on, printed above their tables: the CPU, the vector code the C
step was built for (and torch's), and the float32 matmul peak measured at the threads the figures use.

    CPU: Intel(R) Xeon(R) Processor, 2 cores, AVX-512 + AMX; C step: AVX2 (16 x 256-bit registers; ...),
    -march=native = rocketlake -mno-avx512f; torch ops: AVX2; float32 matmul peak 0.24 TFLOP/s on 2 threads
"""

from __future__ import annotations

import os

import torch

from colossus.infer.cpu_decode import load_kernel
from colossus.train.device import cpu_model, measured_matmul_peak, vector_isa


def cpu_facts(threads: int) -> dict:
    """The CPU, its ISA, the C step's build, torch's ISA, and the matmul peak (FLOP/s) on `threads` threads."""
    kernel = load_kernel()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        peak = measured_matmul_peak("cpu", torch.float32)
    finally:
        torch.set_num_threads(before)
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_isa": vector_isa(),
            "c_step": kernel.describe() if kernel else "not built (no C compiler)",
            "torch_isa": torch.backends.cpu.get_cpu_capability(), "peak_threads": threads, "matmul_peak": peak}


def describe(f: dict) -> str:
    return (f"CPU: {f['cpu']}, {f['cores']} cores, {f['cpu_isa']}; C step: {f['c_step']}; torch ops: "
            f"{f['torch_isa']}; float32 matmul peak {f['matmul_peak'] / 1e12:.3f} TFLOP/s on {f['peak_threads']} "
            "thread(s) (torch, the best of 0.5 s of 2048 x 2048 matmuls)")
