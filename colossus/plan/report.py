"""The answer as a readable table or as JSON."""

from __future__ import annotations

import math
from dataclasses import asdict

from colossus.plan.planner import Answer
from colossus.plan.search import Plan

STEP_PARTS = (("compute", "compute"), ("tp_comm", "TP"), ("cp_comm", "CP"), ("ep_comm", "EP"),
              ("pp_bubble", "bubble"), ("pp_comm", "PP p2p"), ("dp_comm", "DP"), ("optimizer", "optimizer"),
              ("stragglers", "stragglers"))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def plan_summary(plan: Plan) -> dict:
    """The numbers of one layout (no reliability: that belongs to the run)."""
    return {
        "layout": asdict(plan.layout),
        "gpus_used": plan.gpus_used,
        "tflops_per_gpu": plan.tflops_per_gpu,
        "hardware_tflops_per_gpu": plan.hardware_tflops_per_gpu,
        "mfu": plan.mfu,
        "step_time_s": plan.step_time_s,
        "memory_gib_per_gpu": plan.memory.total,
        "tokens_per_day": plan.tokens_per_day,
        "days_to_train_no_failures": plan.days_to_train,
    }


def to_json(ans: Answer) -> dict:
    best, m, c, w = ans.best, ans.work.model, ans.cluster, ans.work
    rel, en = ans.reliability, ans.energy
    return {
        "model": {"name": m.name, "params": m.params, "active_params": m.active_params,
                  "layers": m.n_layer, "d_model": m.d_model, "experts": m.n_experts, "top_k": m.top_k},
        "cluster": {"gpu": c.gpu.name, "gpus": c.n_gpus, "scaleout_gbps": c.net_gbps,
                    "mtbf_gpu_hours": c.mtbf_gpu_hours, "checkpoint_write_gbps": c.ckpt_gbps, "pue": c.pue},
        "workload": {"seq_len": w.seq_len, "batch_tokens": best.layout.batch_seqs(w) * w.seq_len,
                     "train_tokens": w.train_tokens, "precision": w.precision},
        **plan_summary(best),
        "memory_breakdown_gib": best.memory.to_dict(),
        "step_breakdown_s": best.step.to_dict(),
        "days_to_train": _finite(ans.wall_days),
        "finish_days": {k: _finite(v) for k, v in ans.finish_days.items()},
        "interruptions_per_day": rel.interruptions_per_day,
        "cluster_mtbf_h": rel.cluster_mtbf_h,
        "checkpoint_interval_min": rel.checkpoint_interval_min,
        "checkpoint_every_steps": round(rel.checkpoint_interval_min * 60 / best.step_time_s),
        "checkpoint_write_s": rel.checkpoint_write_s,
        "restart_min": rel.restart_min,
        "goodput": rel.goodput,
        "power_mw": en.power_mw,
        "energy_mwh": _finite(en.energy_mwh),
        "energy_cost_usd": _finite(en.energy_cost_usd),
        "gpu_hours": _finite(en.gpu_hours),
        "gpu_cost_usd": _finite(en.gpu_cost_usd),
        "layouts_evaluated": ans.result.evaluated,
        "search_s": ans.search_s,
        "top_layouts": [plan_summary(p) for p in ans.result.plans],
    }


def _num(x: float, digits: int = 1) -> str:
    return "never" if not math.isfinite(x) else f"{x:,.{digits}f}"


def layout_table(plans: list[Plan]) -> str:
    head = (f"{'#':>2} {'tp':>3} {'cp':>3} {'pp':>4} {'vpp':>3} {'dp':>6} {'ep':>3} {'mb':>3} "
            f"{'recompute':>9} {'zero':>4} {'GiB/GPU':>8} {'step s':>7} {'TFLOP/s':>7} {'MFU':>6} "
            f"{'days':>7}")
    rows = [head]
    for i, p in enumerate(plans, 1):
        lay = p.layout
        rows.append(f"{i:>2} {lay.tp:>3} {lay.cp:>3} {lay.pp:>4} {lay.vpp:>3} {lay.dp:>6} {lay.ep:>3} "
                    f"{lay.microbatch:>3} {lay.recompute:>9} {lay.zero:>4} {p.memory.total:>8.1f} "
                    f"{p.step_time_s:>7.2f} {p.tflops_per_gpu:>7.0f} {p.mfu:>6.1%} {p.days_to_train:>7.1f}")
    return "\n".join(rows)


def format_text(ans: Answer) -> str:
    best, m, c, w = ans.best, ans.work.model, ans.cluster, ans.work
    rel, en, mem, st = ans.reliability, ans.energy, best.memory, best.step
    kind = f"MoE {m.n_experts}x, top-{m.top_k}, {m.active_params / 1e9:.0f}B active" if m.is_moe else "dense"
    batch = best.layout.batch_seqs(w)
    spare = c.n_gpus - best.gpus_used
    ckpt_steps = rel.checkpoint_interval_min * 60 / best.step_time_s
    lines = [
        f"colossus plan: {m.name} ({m.params / 1e9:,.1f}B parameters, {kind}) on {c.n_gpus:,} x {c.gpu.name}",
        f"  sequence {w.seq_len:,} - batch {batch:,} sequences ({batch * w.seq_len / 1e6:,.1f}M tokens) - "
        f"{w.train_tokens / 1e12:g}T tokens - {w.precision}",
        f"  {ans.result.evaluated:,} layouts evaluated in {ans.search_s:.2f} s",
        "",
        layout_table(ans.result.plans),
        "",
        f"best layout: {best.layout.describe()}" + (f"  ({spare:,} GPUs left spare)" if spare else ""),
        "  memory per GPU, GiB:  "
        + " + ".join(f"{k} {v:.1f}" for k, v in mem.to_dict().items() if k != "total")
        + f" = {mem.total:.1f} of {c.gpu.hbm_gib:g}",
        "  step time, s:         " + " + ".join(f"{label} {getattr(st, k):.2f}" for k, label in STEP_PARTS
                                               if getattr(st, k) > 0.005) + f" = {st.total:.2f}",
        f"  throughput:           {best.tflops_per_gpu:.0f} TFLOP/s per GPU (model; "
        f"{best.hardware_tflops_per_gpu:.0f} executed) - MFU {best.mfu:.1%} - "
        f"{best.tokens_per_day / 1e9:,.1f}B tokens/day - {best.days_to_train:,.1f} days without failures",
        f"  reliability:          {rel.interruptions_per_day:,.1f} interruptions/day (cluster MTBF "
        f"{rel.cluster_mtbf_h * 60:,.1f} min) - checkpoint of {rel.checkpoint_write_s:.1f} s every "
        f"{rel.checkpoint_interval_min:,.1f} min = {ckpt_steps:,.0f} steps (Young/Daly) - "
        f"restart {rel.restart_min:g} min - "
        f"goodput {rel.goodput:.1%}",
        f"  finish, days:         expected {_num(ans.wall_days)} - Monte Carlo "
        f"p10 {_num(ans.finish_days['p10'])} / p50 {_num(ans.finish_days['p50'])} / "
        f"p90 {_num(ans.finish_days['p90'])}",
        f"  energy:               {en.power_mw:,.1f} MW average (PUE {c.pue:g}) - "
        f"{_num(en.energy_mwh, 0)} MWh "
        f"- ${_num(en.energy_cost_usd / 1e6, 2)}M of energy - {_num(en.gpu_hours / 1e6, 1)}M GPU-hours "
        f"(${_num(en.gpu_cost_usd / 1e6, 1)}M)",
    ]
    if rel.goodput < 0.5:
        lines.append(f"  warning: failures and restarts take {1 - rel.goodput:.0%} of the time; shorten "
                     "restarts (hot spares, in-job recovery) or make failures rarer")
    return "\n".join(lines)
