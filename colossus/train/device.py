"""Where training runs: the device, its autocast dtype, and its peak FLOP/s for MFU."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

# Dense bf16 peak FLOP/s from the vendors' datasheets (no sparsity).
GPU_PEAK_BF16 = {
    "H200": 989e12, "H100": 989e12, "H800": 989e12, "GH200": 989e12, "B200": 2250e12, "GB200": 2500e12,
    "A100": 312e12, "A800": 312e12, "L40S": 362e12, "L40": 181e12, "L4": 121e12, "A10": 125e12,
    "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12, "MI300X": 1307e12,
}


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class Device:
    type: str  # cpu | cuda | mps
    name: str
    dtype: torch.dtype  # autocast dtype; float32 means no autocast

    @property
    def torch(self) -> torch.device:
        return torch.device(self.type)

    def autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.type, dtype=self.dtype)

    def attention_backend(self):
        """On CPU the math kernel trains short sequences faster than the flash kernel (measured in
        benchmarks/train_cpu.py); elsewhere let PyTorch choose."""
        if self.type != "cpu":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)

    def peak_flops(self) -> tuple[float, str]:
        """(FLOP/s, where the figure comes from)."""
        if self.type == "cuda":
            for key, flops in sorted(GPU_PEAK_BF16.items(), key=lambda kv: -len(kv[0])):
                if key in self.name:
                    scale = 1.0 if self.dtype == torch.bfloat16 else 0.5  # fp32 via TF32 at best
                    return flops * scale, f"{key} datasheet"
            return 100e12, "unknown GPU, assumed 100 TFLOP/s"
        return measured_matmul_peak(self.type, self.dtype), "measured matmul peak"

    def synchronize(self) -> None:
        if self.type == "cuda":
            torch.cuda.synchronize()


def check_device(name: str) -> str:
    """name, when it is a device that is here (cpu, cuda, cuda:N, mps); else a ColossusError saying what to use."""
    from colossus.errors import ColossusError

    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise ColossusError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ColossusError(f"--device {name}: no CUDA GPU is visible to PyTorch {torch.__version__} "
                            "(use --device cpu)")
    if index and int(index) >= torch.cuda.device_count():
        raise ColossusError(f"--device {name}: there are {torch.cuda.device_count()} CUDA GPUs (cuda:0 to "
                            f"cuda:{torch.cuda.device_count() - 1})")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ColossusError("--device mps: no Apple GPU is visible (use --device cpu)")
    return name


def pick_device(name: str = "auto", dtype: str = "auto") -> Device:
    from colossus.errors import ColossusError

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda", "mps"):
        raise ColossusError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    check_device(name)
    if dtype == "auto":
        bf16 = (torch.cuda.is_bf16_supported() if name == "cuda" else name == "cpu" and cpu_has_bf16())
        dt = torch.bfloat16 if bf16 else torch.float32
    else:
        dt = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}.get(dtype)
        if dt is None:
            raise ColossusError(f"unknown dtype {dtype!r}: use auto, bf16, fp16 or fp32")
    label = torch.cuda.get_device_name() if name == "cuda" else name
    return Device(name, label, dt)


@lru_cache(maxsize=4)
def measured_matmul_peak(device_type: str, dtype: torch.dtype, n: int = 2048, seconds: float = 0.5) -> float:
    """FLOP/s of a large square matmul on this device, the best of the trials that fit in `seconds` (at least 3):
    the ceiling for a CPU, whose datasheet peak depends on clocks and vector units we cannot read reliably. On a
    shared host a moment's load lowers a trial; the best of half a second's worth is steadier than the best of three."""
    a = torch.randn(n, n, dtype=dtype, device=device_type)
    b = torch.randn(n, n, dtype=dtype, device=device_type)
    a @ b  # warm-up: the first call pays for kernel selection and page faults
    best, trials, start = 0.0, 0, time.perf_counter()
    while trials < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
        trials += 1
    return best


def cpu_model() -> str:
    """The CPU's marketing name, as /proc/cpuinfo (or the platform) gives it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def vector_isa() -> str:
    """The widest vector instructions this CPU has: AVX-512 (+ AMX), AVX2, NEON or SVE, or plain."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = set()
    for line in text.splitlines():
        if line.lower().startswith(("flags", "features")):
            flags |= set(line.split(":", 1)[1].split())
    if "avx512f" in flags:
        return "AVX-512 + AMX" if "amx_tile" in flags else "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    if "sve" in flags:
        return "SVE"
    if "asimd" in flags or platform.machine() in ("arm64", "aarch64"):
        return "NEON"
    return platform.machine()


def machine(device: Device) -> dict:
    """Where a figure came from: the CPU, its cores and torch's threads, the device, and the peak that MFU is
    computed against (measured on a CPU, from the datasheet on a GPU)."""
    peak, source = device.peak_flops()
    return {"cpu": cpu_model(), "vector_isa": vector_isa(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": device.name, "dtype": str(device.dtype)[6:],
            "matmul_peak_tflops": round(peak / 1e12, 4), "peak_source": source, "torch": torch.__version__}
