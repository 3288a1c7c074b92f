"""PNGs of a plan: MFU and days to train against GPU count, and the memory breakdown of the best layouts."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from colossus.errors import ColossusError  # noqa: E402
from colossus.plan.planner import Answer  # noqa: E402
from colossus.plan.reliability import expected_wall_s, reliability  # noqa: E402
from colossus.plan.search import best_plans  # noqa: E402

GPU_COUNTS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)


def scaling(answer: Answer, fixed: dict, counts=GPU_COUNTS) -> list[dict]:
    """Best layout at each GPU count (same model, batch and fixed choices, except dp)."""
    fixed = {k: v for k, v in fixed.items() if k != "dp"}
    points = []
    for n in counts:
        cluster = answer.cluster.with_gpus(n)
        try:
            plan = best_plans(answer.work, cluster, fixed, keep=1).plans[0]
        except ColossusError:  # too few GPUs to hold the model, or too many for the batch
            continue
        rel = reliability(cluster, answer.work.model.params, plan.gpus_used, plan.step_time_s)
        wall_s = expected_wall_s(plan.days_to_train * 86400, rel.checkpoint_interval_min * 60,
                                 rel.checkpoint_write_s, rel.restart_min * 60, rel.cluster_mtbf_h * 3600)
        points.append({"gpus": n, "mfu": plan.mfu, "days": plan.days_to_train, "wall_days": wall_s / 86400,
                       "layout": plan.layout.describe()})
    return points


def write_plots(answer: Answer, out_dir: Path, fixed: dict | None = None, counts=GPU_COUNTS) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    m, gpu = answer.work.model, answer.cluster.gpu
    work = answer.work
    title = f"{m.name} on {gpu.name}, seq {work.seq_len:,}, batch {work.batch_tokens / 1e6:,.0f}M tokens"
    points = scaling(answer, fixed or {}, counts)
    written = []
    if points:
        gpus = [p["gpus"] for p in points]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(gpus, [100 * p["mfu"] for p in points], "o-")
        ax.set(xscale="log", xlabel="GPUs", ylabel="MFU, %", title=title, ylim=(0, None))
        ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, out_dir / "mfu_vs_gpus.png"))

        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(gpus, [p["days"] for p in points], "o-", label="no failures")
        walls = [p["wall_days"] if math.isfinite(p["wall_days"]) else float("nan") for p in points]
        ax.plot(gpus, walls, "s--", label="with failures, checkpoints, restarts (expected)")
        ax.set(xscale="log", yscale="log", xlabel="GPUs",
               ylabel=f"days for {answer.work.train_tokens / 1e12:g}T tokens", title=title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        written.append(_save(fig, out_dir / "days_vs_gpus.png"))

    plans = answer.result.plans
    parts = ("weights", "grads", "optimizer", "activations", "buffers")
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.45 * len(plans)))
    labels = [_short(i, p) for i, p in enumerate(plans, 1)]
    left = [0.0] * len(plans)
    for part in parts:
        values = [getattr(p.memory, part) for p in plans]
        ax.barh(labels, values, left=left, label=part)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.axvline(gpu.hbm_gib, color="black", linestyle="--", label=f"{gpu.name} {gpu.hbm_gib:g} GiB")
    ax.invert_yaxis()
    ax.set(xlabel="GiB per GPU", title=f"memory per GPU, best layouts: {m.name}, {answer.cluster.n_gpus:,} "
           "GPUs")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    written.append(_save(fig, out_dir / "memory_breakdown.png"))
    return written


def _short(rank: int, plan) -> str:
    lay = plan.layout
    ep = f" ep{lay.ep}" if lay.ep > 1 else ""
    return (f"#{rank} tp{lay.tp} cp{lay.cp} pp{lay.pp}x{lay.vpp} dp{lay.dp}{ep} mb{lay.microbatch} "
            f"{lay.recompute} z{lay.zero}")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
