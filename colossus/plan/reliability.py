"""Failures: interruptions per day, the Young/Daly checkpoint interval, goodput, and a Monte Carlo
simulation of the whole run.

Failures arrive as a Poisson process at N / MTBF_gpu (every GPU-hour carries the same risk; any
failure stops the synchronous job). A checkpoint costs delta seconds of writing; a failure loses the
work since the last checkpoint and costs a restart of R seconds, during which another failure can
strike (Daly 2006, "A higher order estimate of the optimum checkpoint interval for restart dumps").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from colossus.plan.hardware import Cluster

CHECKPOINT_BYTES_PER_PARAM = 14
"""bf16 weights plus fp32 master weights and both Adam moments (as BLOOM's 2.3 TB for 176B)."""
NORMAL_APPROX_ABOVE = 2000
"""Sum more truncated exponentials than this by the central limit theorem (exact to well under 0.1%)."""


@dataclass(frozen=True)
class Reliability:
    cluster_mtbf_h: float
    interruptions_per_day: float
    checkpoint_write_s: float
    checkpoint_interval_min: float
    restart_min: float
    goodput: float
    """Expected share of wall-clock time spent on work that is kept."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def daly_interval(write_s: float, mtbf_s: float) -> float:
    """Seconds of work between checkpoints: Daly's higher-order refinement of Young's sqrt(2 delta M)."""
    if write_s >= 2 * mtbf_s:
        return mtbf_s
    x = write_s / (2 * mtbf_s)
    return math.sqrt(2 * write_s * mtbf_s) * (1 + math.sqrt(x) / 3 + x / 9) - write_s


def expected_wall_s(work_s: float, interval_s: float, write_s: float, restart_s: float,
                    mtbf_s: float) -> float:
    """Daly's expected completion time of `work_s` of work, failures during restarts included."""
    segment, restart = (interval_s + write_s) / mtbf_s, restart_s / mtbf_s
    if segment + restart > 700:
        return math.inf
    return mtbf_s * math.exp(restart) * math.expm1(segment) * work_s / interval_s


def reliability(cluster: Cluster, n_params: float, gpus_in_job: int | None = None,
                step_s: float = 0.0) -> Reliability:
    """Failure rate, checkpoint cost, interval (in whole steps: checkpoints fall between steps), goodput."""
    n = gpus_in_job or cluster.n_gpus
    mtbf_s = cluster.mtbf_gpu_hours * 3600 / n
    write_s = n_params * CHECKPOINT_BYTES_PER_PARAM / (cluster.ckpt_gbps * 1e9)
    interval = daly_interval(write_s, mtbf_s)
    if step_s > 0:
        interval = max(1, round(interval / step_s)) * step_s
    restart_s = cluster.restart_min * 60
    wall = expected_wall_s(1e6 * interval, interval, write_s, restart_s, mtbf_s)
    goodput = 0.0 if math.isinf(wall) else 1e6 * interval / wall
    return Reliability(mtbf_s / 3600, 86400 / mtbf_s, write_s, interval / 60, cluster.restart_min, goodput)


def _sum_truncated_exp(rng: np.random.Generator, counts: np.ndarray, cap: float, mtbf: float) -> np.ndarray:
    """For each count n, the sum of n exponential(mtbf) times conditioned to be below `cap`
    (how long a failed attempt ran before the failure)."""
    p_fail = -math.expm1(-cap / mtbf)
    if p_fail <= 0:
        return np.zeros(len(counts))
    out = np.empty(len(counts))
    small = counts <= NORMAL_APPROX_ABOVE
    draws = -mtbf * np.log1p(-rng.random(int(counts[small].sum())) * p_fail)  # inverse CDF, truncated law
    running = np.concatenate([[0.0], np.cumsum(draws)])
    ends = np.cumsum(counts[small])
    out[small] = running[ends] - running[ends - counts[small]]
    if (~small).any():
        # Mean and variance of one truncated exponential, then the normal approximation of the sum.
        q = cap / mtbf
        mean = mtbf * (1 - q * math.exp(-q) / p_fail)
        second = mtbf**2 * (2 - (q * q + 2 * q + 2) * math.exp(-q) / p_fail)
        n = counts[~small].astype(float)
        out[~small] = rng.normal(n * mean, np.sqrt(n * max(second - mean * mean, 0.0)))
    return out


def simulate_run(work_s: float, interval_s: float, write_s: float, restart_s: float, mtbf_s: float,
                 runs: int = 2000, seed: int = 0) -> np.ndarray:
    """Wall-clock seconds of `runs` simulated runs. The work is cut into segments of `interval_s`
    followed by a checkpoint; a segment is retried until it completes without a failure; each failure
    costs the time the attempt ran plus a restart, which is itself retried until it survives."""
    rng = np.random.default_rng(seed)
    segments = max(1, math.ceil(work_s / interval_s))
    last = work_s - (segments - 1) * interval_s  # the final segment may be shorter
    attempt = interval_s + write_s
    p_ok, p_last_ok = math.exp(-attempt / mtbf_s), math.exp(-(last + write_s) / mtbf_s)
    if p_ok < 1e-12:
        return np.full(runs, math.inf)
    # Failed attempts before each success: negative binomial over the segments.
    fails = np.zeros(runs, dtype=np.int64)
    if segments > 1:
        fails = rng.negative_binomial(segments - 1, p_ok, runs)
    fails_last = rng.geometric(p_last_ok, runs) - 1
    lost = (_sum_truncated_exp(rng, fails, attempt, mtbf_s)
            + _sum_truncated_exp(rng, fails_last, last + write_s, mtbf_s))
    # Every failure needs a restart that survives; failed restarts lose their partial time too.
    restarts = fails + fails_last
    q_ok = math.exp(-restart_s / mtbf_s)
    failed_restarts = np.where(restarts > 0, rng.negative_binomial(np.maximum(restarts, 1), q_ok), 0)
    lost += _sum_truncated_exp(rng, failed_restarts, restart_s, mtbf_s)
    return (segments - 1) * attempt + last + write_s + lost + restarts * restart_s


def finish_quantiles(walls_s: np.ndarray, quantiles=(0.1, 0.5, 0.9)) -> dict[str, float]:
    """Days to finish at the given quantiles of the simulated runs."""
    days = walls_s / 86400
    out = {f"p{round(q * 100)}": float(np.quantile(days, q)) for q in quantiles}
    return out | {"mean": float(days.mean())}
