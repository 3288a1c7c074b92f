"""`colossus plan`: layout, memory, step time, MFU, failures, checkpoints and energy of a training run.

    colossus plan --model llama3-405b --gpu h100 --gpus 16384 --seq 8192 --global-batch-tokens 16M
    colossus plan --model llama3-405b --gpu h100 --gpus 16384 --seq 8192 --global-batch-tokens 16M \\
                  --tp 8 --pp 16 --json
    colossus plan --model grok-1 --gpu gb200 --gpus 200000 --plot plots/
    colossus plan --validate          # predictions against published runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from colossus.errors import ColossusError
from colossus.plan.hardware import GPUS, LLAMA3_GPU_MTBF_HOURS, Cluster, get_gpu
from colossus.plan.layout import RECOMPUTE, Workload
from colossus.plan.models import PRESETS, ModelShape, parse_count, resolve_model

LAYOUT_FLAGS = ("tp", "pp", "dp", "cp", "ep", "vpp", "microbatch", "recompute", "zero")
SHAPE_FLAGS = ("layers", "d_model", "heads", "kv_heads", "ffn", "vocab", "experts", "top_k")


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="plan a training run on a GPU cluster: layout, memory, time, MFU, "
                                    "failures, checkpoints, energy",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    m = p.add_argument_group("model")
    m.add_argument("--model", help=f"preset ({', '.join(PRESETS)}) or a Colossus model config .json")
    m.add_argument("--layers", type=int, help="shape by hand: transformer layers")
    m.add_argument("--d-model", type=int, help="shape by hand: width of the residual stream")
    m.add_argument("--heads", type=int, help="shape by hand: attention heads")
    m.add_argument("--kv-heads", type=int, help="shape by hand: key/value heads (default: --heads)")
    m.add_argument("--ffn", type=int, help="shape by hand: MLP hidden width, of one expert for MoE "
                                           "(default: 4 x d-model, or 8/3 x for gated)")
    m.add_argument("--vocab", type=int, default=None, help="shape by hand: vocabulary (default 128256)")
    m.add_argument("--experts", type=int, help="shape by hand: experts per MoE layer (default 1: dense)")
    m.add_argument("--top-k", type=int, help="shape by hand: experts per token (default 2 for MoE)")
    m.add_argument("--mlp", choices=("gated", "plain"), default="gated", help="gated (SwiGLU) or plain MLP")

    w = p.add_argument_group("training")
    w.add_argument("--seq", type=int, help="sequence length (default: the config's, else 8192)")
    w.add_argument("--global-batch-tokens", default="16M", help="global batch in tokens, e.g. 16M (default)")
    w.add_argument("--tokens", default="15T", help="tokens to train, e.g. 15T (default)")
    w.add_argument("--precision", choices=("bf16", "fp8"), default="bf16", help="matmul precision")
    w.add_argument("--no-flash-attention", action="store_true", help="materialise attention scores")
    w.add_argument("--no-sequence-parallel", action="store_true", help="norms and dropout unsplit over TP")
    w.add_argument("--dropout", action="store_true", help="the model uses dropout")

    c = p.add_argument_group("cluster")
    c.add_argument("--gpu", default="h100", help=f"GPU type: {', '.join(GPUS)} (default h100)")
    c.add_argument("--gpus", type=int, help="number of GPUs")
    c.add_argument("--net-gbit", type=float, help="scale-out per GPU, Gbit/s (default: the GPU's NIC)")
    c.add_argument("--net-latency-us", type=float, default=10.0, help="scale-out latency per hop, us (10)")
    c.add_argument("--mtbf-hours", type=float, default=LLAMA3_GPU_MTBF_HOURS,
                   help="mean time between job-stopping failures per GPU, hours (default: Llama 3's ~50,700)")
    c.add_argument("--ckpt-gbs", type=float, help="aggregate checkpoint write bandwidth, GB/s "
                                                  "(default: 0.12 GB/s per GPU, as Llama 3's storage)")
    c.add_argument("--restart-min", type=float, default=10.0, help="minutes from a failure to training again")
    c.add_argument("--pue", type=float, default=1.2, help="data-centre power usage effectiveness (1.2)")
    c.add_argument("--usd-per-kwh", type=float, default=0.08, help="energy price (0.08)")
    c.add_argument("--usd-per-gpu-hour", type=float, default=2.0, help="GPU rental price (2.0)")

    lay = p.add_argument_group("layout (fix any choice; the rest is searched)")
    for flag, helptext in (("tp", "tensor parallel (with sequence parallel)"), ("pp", "pipeline stages"),
                           ("dp", "data parallel replicas"), ("cp", "context parallel"),
                           ("ep", "expert parallel"), ("vpp", "virtual stages per GPU (interleaved)"),
                           ("microbatch", "sequences per microbatch"),
                           ("zero", "1: distributed optimizer, 3: FSDP")):
        lay.add_argument(f"--{flag}", type=int, help=helptext)
    lay.add_argument("--recompute", choices=RECOMPUTE, help="activation recomputation")

    o = p.add_argument_group("output")
    o.add_argument("--top", type=int, default=5, help="layouts to list (5)")
    o.add_argument("--json", action="store_true", help="print JSON instead of the table")
    o.add_argument("--plot", type=Path, metavar="DIR", help="write PNGs: MFU and days vs GPU count, memory")
    o.add_argument("--runs", type=int, default=2000, help="Monte Carlo runs of the failure simulation (2000)")
    o.add_argument("--seed", type=int, default=0, help="seed of the failure simulation")
    o.add_argument("--validate", action="store_true", help="compare predictions with published runs and exit")
    p.set_defaults(func=run)


def model_from_args(args) -> tuple[ModelShape, int | None]:
    by_hand = {k: getattr(args, k) for k in SHAPE_FLAGS if getattr(args, k) is not None}
    if args.model and by_hand:
        raise ColossusError(f"give --model or the shape flags, not both (got --model and {sorted(by_hand)})")
    if args.model:
        return resolve_model(args.model)
    missing = [f"--{k.replace('_', '-')}" for k in ("layers", "d_model", "heads") if k not in by_hand]
    if missing:
        raise ColossusError(f"name a --model, or give the shape by hand (missing {', '.join(missing)})")
    gated = args.mlp == "gated"
    experts = args.experts or 1
    ffn = args.ffn or (8 * args.d_model // 3 if gated else 4 * args.d_model)
    shape = ModelShape("custom", args.layers, args.d_model, args.heads, args.kv_heads or args.heads, ffn,
                       args.vocab or 128256, gated_mlp=gated, n_experts=experts,
                       top_k=args.top_k or (2 if experts > 1 else 1))
    return shape, None


def run(args) -> int:
    from colossus.plan.planner import plan_run
    from colossus.plan.report import format_text, to_json

    if args.validate:
        from colossus.plan.validation import validation_table

        print(validation_table())
        return 0
    model, config_seq = model_from_args(args)
    if args.gpus is None:
        raise ColossusError("say how many GPUs with --gpus")
    if args.runs < 1 or args.top < 1:
        raise ColossusError("--runs and --top must be at least 1")
    seq = args.seq or config_seq or 8192
    work = Workload(model, seq, parse_count(args.global_batch_tokens), parse_count(args.tokens),
                    precision=args.precision, flash_attention=not args.no_flash_attention,
                    sequence_parallel=not args.no_sequence_parallel, dropout=args.dropout)
    cluster = Cluster(get_gpu(args.gpu), args.gpus,
                      scaleout_gbps=args.net_gbit / 8 if args.net_gbit is not None else None,
                      net_latency_us=args.net_latency_us, mtbf_gpu_hours=args.mtbf_hours,
                      ckpt_write_gbps=args.ckpt_gbs, restart_min=args.restart_min, pue=args.pue,
                      usd_per_kwh=args.usd_per_kwh, usd_per_gpu_hour=args.usd_per_gpu_hour)
    fixed = {k: getattr(args, k) for k in LAYOUT_FLAGS if getattr(args, k) is not None}
    answer = plan_run(work, cluster, fixed, keep=args.top, runs=args.runs, seed=args.seed)
    if args.json:
        print(json.dumps(to_json(answer), indent=2))
    else:
        print(format_text(answer))
    if args.plot is not None:
        from colossus.plan.plots import write_plots

        written = write_plots(answer, args.plot, fixed)
        if not args.json:
            print("plots: " + ", ".join(str(p) for p in written))
    return 0
