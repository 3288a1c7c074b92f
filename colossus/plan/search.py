"""Enumerate layouts, drop those that break a rule or do not fit in memory, rank by time to train."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from colossus.errors import ColossusError
from colossus.plan.hardware import Cluster
from colossus.plan.layout import MAX_BATCH_ROUNDING, RECOMPUTE, Layout, Workload, layout_problem
from colossus.plan.memory import MemoryBreakdown, memory_per_gpu
from colossus.plan.step import StepTime, step_time

SPARE_LIMIT = 0.05
"""A layout may leave up to 5% of the GPUs idle (as hot spares) when that splits the batch better."""
MICROBATCHES = (1, 2, 4, 8)
ZERO_STAGES = (1, 3)


@dataclass(frozen=True)
class Plan:
    """One layout, evaluated."""

    work: Workload
    cluster: Cluster
    layout: Layout
    memory: MemoryBreakdown
    step: StepTime

    @property
    def fits(self) -> bool:
        return self.memory.total <= self.cluster.gpu.hbm_gib

    @property
    def gpus_used(self) -> int:
        return self.layout.gpus

    @property
    def step_time_s(self) -> float:
        return self.step.total

    @property
    def tokens_per_day(self) -> float:
        return self.step.tokens / self.step.total * 86400

    @property
    def days_to_train(self) -> float:
        """Days of training with no failures (see reliability for the wall-clock time)."""
        return self.work.train_tokens / self.tokens_per_day

    @property
    def peak_flops(self) -> float:
        gpu = self.cluster.gpu
        return (gpu.fp8_tflops if self.work.precision == "fp8" else gpu.bf16_tflops) * 1e12

    @property
    def tflops_per_gpu(self) -> float:
        """Model FLOP/s per GPU (6N + attention), as MFU counts them."""
        return self.step.model_flops / self.step.total / self.gpus_used / 1e12

    @property
    def hardware_tflops_per_gpu(self) -> float:
        """FLOP/s per GPU the hardware executes, recomputation included."""
        return self.step.hardware_flops / self.step.total / self.gpus_used / 1e12

    @property
    def mfu(self) -> float:
        return self.tflops_per_gpu * 1e12 / self.peak_flops


def evaluate(work: Workload, cluster: Cluster, layout: Layout) -> Plan:
    """One layout (assumed valid: see layout_problem)."""
    memory = memory_per_gpu(work, layout, cluster.gpu)
    return Plan(work, cluster, layout, memory, step_time(work, cluster, layout))


@dataclass
class SearchResult:
    plans: list[Plan]
    """Layouts that fit, fastest first."""
    evaluated: int
    leanest: Plan | None = None
    """The layout needing the least memory, fitting or not."""
    problems: list[str] = field(default_factory=list)


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def candidate_layouts(work: Workload, cluster: Cluster, fixed: dict[str, int | str]):
    """Every layout the search considers; `fixed` pins any Layout field (tp, pp, dp, cp, ep, vpp,
    microbatch, recompute, zero)."""
    m, n = work.model, cluster.n_gpus
    known = {f.name for f in fields(Layout)}
    if set(fixed) - known:
        raise ColossusError(f"cannot fix {sorted(set(fixed) - known)}: choose among {sorted(known)}")

    def options(name: str, values):
        return [fixed[name]] if name in fixed else list(values)

    domain = cluster.gpu.nvlink_domain
    tps = options("tp", [t for t in _divisors(m.n_head) if t <= domain and n % t == 0])
    cps = options("cp", [c for c in (1, 2, 4, 8, 16, 32, 64) if work.seq_len % (2 * c) == 0
                         and work.seq_len // c >= 512 or c == 1])
    batch_divisors = _divisors(work.batch_seqs)
    for tp in tps:
        for cp in cps:
            if tp * cp > n:
                continue
            # Stage counts that fill the cluster exactly, or that split the layers evenly.
            pps = options("pp", [p for p in range(1, min(m.n_layer, n // (tp * cp)) + 1)
                                 if (n // (tp * cp)) % p == 0 or m.n_layer % p == 0])
            for pp in pps:
                mp = tp * cp * pp
                if mp > n:
                    continue
                for dp in options("dp", _dp_options(n, mp, batch_divisors)):
                    eps = options("ep", [e for e in _divisors(m.n_experts) if (dp * cp) % e == 0])
                    per_gpu_layers = math.ceil(m.n_layer / pp)
                    vpps = options("vpp", sorted({v for v in (1, 2, 4, per_gpu_layers) if v == 1 or
                                                  (pp >= 3 and v <= per_gpu_layers)}))
                    mbs = options("microbatch", [b for b in MICROBATCHES
                                                 if dp * b <= work.batch_seqs * MAX_BATCH_ROUNDING or b == 1])
                    for ep in eps:
                        for vpp in vpps:
                            for mb in mbs:
                                for rc in options("recompute", RECOMPUTE):
                                    for zero in options("zero", ZERO_STAGES):
                                        yield Layout(tp, pp, dp, cp, ep, vpp, mb, rc, zero)


def _dp_options(n: int, mp: int, batch_divisors: list[int]) -> list[int]:
    """Fill the cluster; or leave a few GPUs spare so that the batch splits exactly over DP."""
    full = n // mp
    enough = math.ceil(n * (1 - SPARE_LIMIT) / mp)
    if full < max(1, enough):
        return []
    exact = [d for d in batch_divisors if enough <= d < full]
    return [full] + exact[-1:]


def search(work: Workload, cluster: Cluster, fixed: dict[str, int | str] | None = None,
           keep: int = 10) -> SearchResult:
    """The `keep` fastest layouts that fit, with the count of layouts evaluated."""
    fixed = dict(fixed or {})
    best: list[Plan] = []
    leanest: Plan | None = None
    problems: list[str] = []
    evaluated = 0
    for layout in candidate_layouts(work, cluster, fixed):
        problem = layout_problem(work, layout)
        if problem:
            if problem not in problems:
                problems.append(problem)
            continue
        if layout.gpus > cluster.n_gpus:
            problems.append(f"{layout.describe()} needs {layout.gpus} GPUs, more than {cluster.n_gpus}")
            continue
        evaluated += 1
        memory = memory_per_gpu(work, layout, cluster.gpu)
        if leanest is None or memory.total < leanest.memory.total:
            leanest = Plan(work, cluster, layout, memory, step_time(work, cluster, layout))
        if memory.total > cluster.gpu.hbm_gib:
            continue
        plan = Plan(work, cluster, layout, memory, step_time(work, cluster, layout))
        best.append(plan)
        if len(best) > 4 * keep:  # keep the list short: sort and cut now and then
            best.sort(key=_rank)
            del best[keep:]
    best.sort(key=_rank)
    return SearchResult(best[:keep], evaluated, leanest, problems)


def _rank(plan: Plan) -> tuple[float, float]:
    return plan.days_to_train, plan.memory.total


def best_plans(work: Workload, cluster: Cluster, fixed: dict[str, int | str] | None = None,
               keep: int = 10) -> SearchResult:
    """search(), or a clear error saying why nothing can run."""
    result = search(work, cluster, fixed, keep)
    if result.plans:
        return result
    m, gpu = work.model, cluster.gpu
    if result.leanest is not None:
        lean = result.leanest
        raise ColossusError(
            f"{m.name} ({m.params / 1e9:.0f}B parameters) does not fit on {cluster.n_gpus} x {gpu.name}: "
            f"the leanest layout ({lean.layout.describe()}) needs {lean.memory.total:,.0f} GiB per GPU and "
            f"a {gpu.name} has {gpu.hbm_gib:g} GiB. Use more GPUs, GPUs with more memory, or a shorter "
            "sequence.")
    reason = result.problems[0] if result.problems else "no tp x cp x pp x dp matches the GPU count"
    if any("batch" in problem for problem in result.problems) and not fixed:
        raise ColossusError(
            f"a global batch of {work.batch_seqs:,} sequences of {work.seq_len:,} tokens cannot keep "
            f"{cluster.n_gpus:,} GPUs busy with any layout ({reason}): raise --global-batch-tokens or use "
            "fewer GPUs")
    if fixed:
        raise ColossusError(f"no valid layout with {_show(fixed)}: {reason}")
    raise ColossusError(f"no valid layout for {m.name} on {cluster.n_gpus} GPUs: {reason}")


def _show(fixed: dict[str, int | str]) -> str:
    return " ".join(f"{k}={v}" for k, v in fixed.items())
