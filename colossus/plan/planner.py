"""The whole answer to one question: the best layouts, then failures, finish date and energy of the best."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from colossus.plan.energy import Energy, energy
from colossus.plan.hardware import Cluster
from colossus.plan.layout import Workload
from colossus.plan.reliability import (
    Reliability,
    expected_wall_s,
    finish_quantiles,
    reliability,
    simulate_run,
)
from colossus.plan.search import Plan, SearchResult, best_plans


@dataclass
class Answer:
    work: Workload
    cluster: Cluster
    result: SearchResult
    reliability: Reliability
    wall_days: float
    """Expected wall-clock days, checkpoints, failures and restarts included (Daly)."""
    finish_days: dict[str, float]
    """Quantiles of the Monte Carlo finish time, days."""
    energy: Energy
    search_s: float

    @property
    def best(self) -> Plan:
        return self.result.plans[0]


def plan_run(work: Workload, cluster: Cluster, fixed: dict | None = None, keep: int = 5,
             runs: int = 2000, seed: int = 0) -> Answer:
    started = time.perf_counter()
    result = best_plans(work, cluster, fixed, keep)
    search_s = time.perf_counter() - started
    best = result.plans[0]
    rel = reliability(cluster, work.model.params, best.gpus_used, best.step_time_s)
    work_s = best.days_to_train * 86400
    interval, write = rel.checkpoint_interval_min * 60, rel.checkpoint_write_s
    restart, mtbf = rel.restart_min * 60, rel.cluster_mtbf_h * 3600
    wall_days = expected_wall_s(work_s, interval, write, restart, mtbf) / 86400
    walls = simulate_run(work_s, interval, write, restart, mtbf, runs=runs, seed=seed)
    finish = finish_quantiles(walls) if math.isfinite(wall_days) else {"p10": math.inf, "p50": math.inf,
                                                                       "p90": math.inf, "mean": math.inf}
    return Answer(work, cluster, result, rel, wall_days, finish, energy(cluster, wall_days), search_s)
