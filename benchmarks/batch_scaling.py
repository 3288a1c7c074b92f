"""How much faster can 32 streams go than one on this machine? The C forward step alone (no sampling, no
Python around it, no HTTP, no client), on the serving benchmark's reference shape and workload (a 45-token
prompt, then 64 generated tokens). A served figure can only be below these: they are the ceiling of
`benchmarks/serve.py`'s "c=32 / c=1" on the same machine.

    PYTHONPATH=. python benchmarks/batch_scaling.py [--threads 2] [--rounds 7]

Above the table: the CPU, the vector code the C step was built for, and the float32 matmul peak
($COLOSSUS_KERNEL_CFLAGS as in decode_step.py measures another build).

Timed, in interleaved rounds (the median of each):
- t1: one decode row (a request alone, mid-reply: position prompt + 32);
- t32: 32 decode rows, one per request, at that position;
- p1: a prompt alone (the first step of a request at concurrency 1);
- p32: the 32 decode rows plus one new prompt (at concurrency 32 each prompt joins a running step).

Then, per request of 64 tokens:
- concurrency 1: 64 tokens in p1 + 63 t1;
- concurrency 32: 32 x 64 tokens in 64 t32 + 32 (p32 - t32);
- decode only (prompts free): 1 / t1 against 32 / t32.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from benchmarks.cpu_header import cpu_facts, describe
from benchmarks.decode_step import REF, timed
from colossus.infer.cpu_decode import CpuDecoder, load_kernel
from colossus.infer.kv_pool import SlotPool
from colossus.model.gpt import GPT

PROMPT, OUTPUT, STREAMS = 45, 64, 32
WAYS = (("float32", "float32"), ("float32", "bfloat16"), ("bfloat16", "bfloat16"))  # (weights, KV cache)


def measure(dec: CpuDecoder, n: int) -> dict[str, float]:
    """t1, t32, p1 and p32 (seconds) once each; slots 0..31 hold requests mid-reply, slot 32 takes the prompt."""
    pos = PROMPT + OUTPUT // 2
    prompt = list(range(1, PROMPT + 1))
    batch = [7] * STREAMS
    return {
        "t1": timed(lambda: dec.step([7], [pos]), n),
        "t32": timed(lambda: dec.step(batch, [pos] * STREAMS), max(1, n // 4)),
        "p1": timed(lambda: dec.step(prompt, list(range(PROMPT)), [STREAMS] * PROMPT, [PROMPT - 1]), max(1, n // 4)),
        "p32": timed(lambda: dec.step(batch + prompt, [pos] * STREAMS + list(range(PROMPT)),
                                      list(range(STREAMS)) + [STREAMS] * PROMPT,
                                      list(range(STREAMS)) + [STREAMS + PROMPT - 1]), max(1, n // 4)),
    }


def ceilings(t: dict[str, float]) -> dict[str, float]:
    """tok/s at concurrency 1 and 32 from the step times, with prompts and decode-only, and their ratios."""
    c1 = OUTPUT / (t["p1"] + (OUTPUT - 1) * t["t1"])
    c32 = STREAMS * OUTPUT / (OUTPUT * t["t32"] + STREAMS * (t["p32"] - t["t32"]))
    d1, d32 = 1 / t["t1"], STREAMS / t["t32"]
    return {"c1": c1, "c32": c32, "ratio": c32 / c1, "d1": d1, "d32": d32, "decode_ratio": d32 / d1}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 8), help="the C step's threads")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds; the median of each figure")
    p.add_argument("--steps", type=int, default=40, help="one-row steps per round (a quarter as many of the others)")
    a = p.parse_args()
    if load_kernel() is None:
        raise SystemExit("no C compiler: the C step is what this measures")
    print(describe(cpu_facts(a.threads)))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    decs = {}
    for weights, kv in WAYS:
        model = GPT(REF).eval()
        if weights == "bfloat16":
            model.round_matmul_weights(torch.bfloat16)
        pool = SlotPool(REF, STREAMS + 1, REF.seq_len, kv_dtype=getattr(torch, kv))
        decs[(weights, kv)] = CpuDecoder.create(model, pool, weights, a.threads)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {w: [] for w in decs}
    for _ in range(a.rounds):
        for way, dec in decs.items():
            runs[way].append(measure(dec, a.steps))
    print(f"ref8.7m, C step on {a.threads} thread(s), {a.rounds} rounds (median); a request: {PROMPT}-token "
          f"prompt, {OUTPUT} tokens; step times in ms")
    print("| weights | KV cache | t1 | t32 | p1 | p32 | c=1 tok/s | c=32 tok/s | c=32 / c=1 | decode only: "
          "c=1 | c=32 | c=32 / c=1 |")
    print("|---" * 12 + "|")
    for (weights, kv), rs in runs.items():
        t = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        c = ceilings(t)
        print(f"| {weights} | {kv} | {t['t1'] * 1e3:.2f} | {t['t32'] * 1e3:.2f} | {t['p1'] * 1e3:.2f} | "
              f"{t['p32'] * 1e3:.2f} | {c['c1']:,.0f} | {c['c32']:,.0f} | {c['ratio']:.2f}x | {c['d1']:,.0f} | "
              f"{c['d32']:,.0f} | {c['decode_ratio']:.2f}x |")


if __name__ == "__main__":
    main()
