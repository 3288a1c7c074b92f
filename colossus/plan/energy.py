"""Power, energy and cost of a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from colossus.plan.hardware import Cluster

LOAD_FACTOR = 0.8
"""Training holds a server at ~80% of its rated maximum on average: matmuls run at the GPU power cap,
but communication waits, pipeline bubbles and restarts draw less."""


@dataclass(frozen=True)
class Energy:
    power_mw: float
    """Average facility power: every booked GPU's server share at the load factor, times the PUE."""
    energy_mwh: float
    energy_cost_usd: float
    gpu_hours: float
    gpu_cost_usd: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def energy(cluster: Cluster, wall_days: float) -> Energy:
    """Booked GPUs draw power for the whole wall-clock time (spares and restarts included)."""
    power_mw = cluster.n_gpus * cluster.gpu.server_watts * LOAD_FACTOR * cluster.pue / 1e6
    hours = wall_days * 24
    mwh = power_mw * hours
    gpu_hours = cluster.n_gpus * hours
    return Energy(power_mw, mwh, mwh * 1000 * cluster.usd_per_kwh, gpu_hours,
                  gpu_hours * cluster.usd_per_gpu_hour)
