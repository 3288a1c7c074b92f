"""GPUs and clusters: the datasheet numbers and the few efficiencies the step model uses.

Peak FLOP/s are dense (no 2:4 sparsity). Bandwidths are one direction per GPU, in GB/s.
Power is the whole server's rated maximum divided by its GPUs, so CPUs, NICs and fans
are counted; the cluster's network and cooling come in through the PUE.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from colossus.errors import ColossusError

# Sustained fractions of a datasheet peak, the same for every GPU and every validation.
MEMORY_BOUND_EFFICIENCY = 0.8
"""Elementwise kernels (norms, activations, residual adds, optimizer) stream at ~80% of HBM bandwidth."""
LINK_EFFICIENCY = 0.8
"""NCCL bus bandwidth reaches ~80% of the link rate on large messages (NVLink and InfiniBand/RoCE alike)."""
NVLINK_LATENCY_S = 3e-6
"""Per step of a collective inside an NVLink domain."""
FLASH_BACKWARD_FACTOR = 2.5
"""Flash-attention backward runs 5 matmuls against the forward's 2 (it recomputes the scores)."""
STRAGGLER_SPREAD = 0.015
"""Step-to-step spread (one standard deviation) of a GPU's speed: clocks, thermals, ECC retries, OS noise.
A synchronous step waits for the slowest of N GPUs, ~spread * sqrt(2 ln N) above the mean."""
MOE_IMBALANCE = 1.1
"""The busiest expert's device gets ~10% more tokens than the mean, even with a balancing loss."""


@dataclass(frozen=True)
class GPU:
    """One accelerator as the planner sees it."""

    name: str
    bf16_tflops: float
    """Dense BF16 tensor-core peak."""
    fp8_tflops: float
    """Dense FP8 peak (equal to bf16 where the GPU has no FP8 tensor cores)."""
    hbm_gib: float
    """Memory the driver reports, GiB."""
    hbm_tbps: float
    """HBM bandwidth, TB/s."""
    nvlink_gbps: float
    """NVLink bandwidth per GPU, one direction, GB/s."""
    nvlink_domain: int
    """GPUs that reach each other over NVLink (a server, or an NVL72 rack)."""
    scaleout_gbps: float
    """Default scale-out NIC bandwidth per GPU, one direction, GB/s."""
    server_watts: float
    """Rated maximum power of the server (or rack) divided by its GPUs, W."""
    gemm_efficiency: float
    """Sustained fraction of peak of the transformer's large matmuls inside a training step
    (below cuBLAS microbenchmarks: clocks drop at the power cap, NCCL kernels share the SMs)."""
    attention_efficiency: float
    """Sustained fraction of peak of fused (flash) attention, forward and backward."""


# Datasheets: NVIDIA A100/H100/H200/B200 and GB200 NVL72 product pages; server power from the
# DGX A100 (6.5 kW), DGX H100/H200 (10.2 kW), DGX B200 (14.3 kW) and NVL72 (~120 kW) specs.
# Efficiencies: large bf16 GEMMs sustain ~70-75% of peak on A100 and ~60-65% on Hopper and
# Blackwell, whose peaks are reached only at full boost clock, which a power-capped GPU running
# dense matmuls does not hold; flash attention reaches ~3/4 of the GEMM rate (FlashAttention-2/3 papers).
# Hopper/Blackwell sit at the low end of their range: chosen with the validation runs in view
# (docs/planner.md, "Constants"), the same for every run; Blackwell is not validated by any run.
GPUS: dict[str, GPU] = {
    g.name: g
    for g in (
        GPU("A100-80G", 312, 312, 80.0, 2.039, 300, 8, 25, 812, 0.70, 0.52),
        GPU("H100-SXM", 989, 1979, 79.6, 3.35, 450, 8, 50, 1275, 0.60, 0.45),
        GPU("H200", 989, 1979, 140.4, 4.8, 450, 8, 50, 1275, 0.60, 0.45),
        GPU("B200", 2250, 4500, 179.0, 8.0, 900, 8, 50, 1788, 0.60, 0.45),
        GPU("GB200", 2500, 5000, 184.0, 8.0, 900, 72, 50, 1667, 0.60, 0.45),
    )
}
_ALIASES = {"a100": "A100-80G", "a100-80g": "A100-80G", "h100": "H100-SXM", "h100-sxm": "H100-SXM",
            "h200": "H200", "b200": "B200", "gb200": "GB200"}


def get_gpu(name: str) -> GPU:
    key = _ALIASES.get(name.lower())
    if key is None:
        raise ColossusError(f"unknown GPU {name!r}: choose one of {', '.join(GPUS)}")
    return GPUS[key]


LLAMA3_GPU_MTBF_HOURS = 54 * 24 * 16384 / 419
"""419 unexpected interruptions in 54 days on 16,384 H100 (Llama 3 paper, section 3.3.4):
one every ~50,700 GPU-hours, counting every cause (GPU, HBM, host, network, software)."""
LLAMA3_CKPT_GBPS_PER_GPU = 2000 / 16384
"""Meta's Tectonic storage sustained 2 TB/s for the 16K-GPU Llama 3 job (Llama 3 paper, section 3.3.1)."""


@dataclass(frozen=True)
class Cluster:
    """The GPUs booked for the run and what surrounds them."""

    gpu: GPU
    n_gpus: int
    scaleout_gbps: float | None = None
    """Scale-out bandwidth per GPU, GB/s (default: the GPU's usual NIC)."""
    net_latency_us: float = 10.0
    """Per step of a collective across the scale-out network."""
    mtbf_gpu_hours: float = LLAMA3_GPU_MTBF_HOURS
    """Mean time between job-interrupting failures, per GPU."""
    ckpt_write_gbps: float | None = None
    """Aggregate checkpoint write bandwidth, GB/s (default: Llama 3's per-GPU share times the GPUs)."""
    restart_min: float = 10.0
    """Time from a failure to training again: detect, reschedule, initialise, load the checkpoint."""
    pue: float = 1.2
    """Power usage effectiveness of the data centre (cooling, power conversion, network)."""
    usd_per_kwh: float = 0.08
    usd_per_gpu_hour: float = 2.0

    def __post_init__(self) -> None:
        if self.n_gpus < 1:
            raise ColossusError(f"the cluster needs at least 1 GPU, not {self.n_gpus}")
        checks = {"scale-out bandwidth": self.scaleout_gbps, "checkpoint bandwidth": self.ckpt_write_gbps,
                  "MTBF": self.mtbf_gpu_hours}
        for what, value in checks.items():
            if value is not None and value <= 0:
                raise ColossusError(f"{what} must be positive, not {value}")
        if self.pue < 1:
            raise ColossusError(f"PUE is at least 1 (all power reaches the IT load), not {self.pue}")
        if self.restart_min < 0 or self.net_latency_us < 0:
            raise ColossusError("restart time and network latency cannot be negative")

    @property
    def net_gbps(self) -> float:
        return self.scaleout_gbps if self.scaleout_gbps is not None else self.gpu.scaleout_gbps

    @property
    def ckpt_gbps(self) -> float:
        if self.ckpt_write_gbps is not None:
            return self.ckpt_write_gbps
        return LLAMA3_CKPT_GBPS_PER_GPU * self.n_gpus

    def with_gpus(self, n_gpus: int) -> Cluster:
        return replace(self, n_gpus=n_gpus)
