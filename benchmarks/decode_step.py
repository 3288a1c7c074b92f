"""Time of one engine decode step, the model alone (no HTTP, no sampling), for the serving benchmark's
reference shape, five ways, in one run: GPT.forward with the cache (the peer: what PyTorch gives without
our work), GPT.decode_step (packed weights, PyTorch ops), and the C step (colossus/infer/cpu_decode.c)
with float32 and with bfloat16 matmul weights, and with float32 weights over a bfloat16 KV cache. Shows
how much of a served token is the model and how much the server. Above the table: the CPU, the vector code
the C step was built for, and the float32 matmul peak; below it, the share of the C step's time in its
matmuls at 32 rows and how near the peak they run.

The C step is built for this machine (-march=native) unless $COLOSSUS_KERNEL_CFLAGS adds flags; on an
AVX-512 host, AVX2 code and AVX2 torch kernels are measured with

    COLOSSUS_KERNEL_CFLAGS=-mno-avx512f ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=. python benchmarks/decode_step.py --threads 2

    PYTHONPATH=. python benchmarks/decode_step.py [--threads 1] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.cpu_header import cpu_facts, describe
from colossus.infer.cpu_decode import CpuDecoder, load_kernel
from colossus.infer.kv_pool import SlotPool
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT

REF = ModelConfig(vocab_size=8192, seq_len=512, n_layer=6, d_model=256, n_head=4, n_kv_head=4, mlp="swiglu",
                  mlp_ratio=3.75)
BATCHES = (1, 8, 32)


def timed(fn, n: int, warmup: int = 2) -> float:
    """Mean seconds of fn() over n calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def time_steps(step, positions: list[int], n: int) -> float:
    """Mean seconds per decode step (logits, then the greedy token) of one row per position."""
    tokens = torch.randint(0, REF.vocab_size, (len(positions),))
    return timed(lambda: step(tokens, positions).argmax(-1), n, warmup=10)


def steps(model: GPT, bf16_model: GPT, pool: SlotPool, threads: int) -> dict:
    """name -> step(tokens, positions) -> logits (B, V), every one on the same pool (the bfloat16 KV cache: a pool
    of the same shape)."""
    def forward(tokens, positions):
        view = pool.decode_view(positions)
        return model(tokens[:, None], cache=view, positions=view.positions[:, None])[:, -1]

    def packed(tokens, positions):
        view = pool.decode_view(positions)
        return model.decode_step(tokens, view.positions, view)

    out = {"forward(cache)": forward, "decode_step": packed}
    if load_kernel() is not None:
        kv16 = SlotPool(REF, pool.slots, pool.max_len, kv_dtype=torch.bfloat16)
        for name, m, w, p in (("C float32", model, "float32", pool), ("C bfloat16", bf16_model, "bfloat16", pool),
                              ("C float32, KV bfloat16", model, "float32", kv16)):
            dec = CpuDecoder.create(m, p, w, threads)
            out[name] = lambda tokens, positions, dec=dec: dec.step(tokens.tolist(), positions)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads, and the C step's")
    p.add_argument("--steps", type=int, default=200)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = GPT(REF).eval()
    bf16_model = GPT(REF).eval()
    bf16_model.load_state_dict(model.state_dict())
    bf16_model.round_matmul_weights(torch.bfloat16)
    pool = SlotPool(REF, 32, REF.seq_len)
    facts = cpu_facts(a.threads)
    print(describe(facts))
    fns = steps(model, bf16_model, pool, a.threads)
    print(f"ref8.7m ({model.num_params() / 1e6:.2f}M parameters), {a.threads} thread(s), {a.steps} steps each, "
          f"rows at positions 60, 61, ...; tok/s = rows / step time; speed-up over forward(cache)")
    print("| rows | " + " | ".join(f"{n} ms | tok/s" for n in fns) + " | " + " | ".join(
        f"{n} speed-up" for n in list(fns)[1:]) + " |")
    print("|---" * (1 + 2 * len(fns) + len(fns) - 1) + "|")
    with torch.inference_mode():
        for batch in BATCHES:
            positions = [60 + i for i in range(batch)]
            zeros = torch.zeros(batch, dtype=torch.long)
            ref = fns["forward(cache)"](zeros, positions)
            for name, fn in fns.items():  # the same logits (bfloat16: the same model rounded) before any timing
                tol = 2e-2 if "bfloat16" in name else 1e-4
                assert torch.allclose(fn(zeros, positions), ref, atol=tol * ref.abs().max().item()), \
                    f"{name} and forward disagree"
            t = {name: time_steps(fn, positions, a.steps) for name, fn in fns.items()}
            base = t["forward(cache)"]
            cells = [f"{t[n] * 1e3:.2f} | {batch / t[n]:,.0f}" for n in fns]
            ups = [f"{base / t[n]:.2f}x" for n in list(fns)[1:]]
            print(f"| {batch} | " + " | ".join(cells) + " | " + " | ".join(ups) + " |")
        if load_kernel() is not None:
            print()
            for name, m, w in (("C float32", model, "float32"), ("C bfloat16", bf16_model, "bfloat16")):
                print(matmul_share(CpuDecoder.create(m, pool, w, a.threads), name, BATCHES[-1], a.steps,
                                   facts["matmul_peak"]))


def matmul_share(dec: CpuDecoder, name: str, rows: int, n: int, peak: float) -> str:
    """How fast the C step's matmuls run at `rows` rows, against the peak: the step times its own sections
    (thread 0 reads the clock around each matmul, and every matmul ends at a barrier of all threads)."""
    positions = [60 + i for i in range(rows)]
    tokens = [0] * rows
    for _ in range(10):
        dec.step(tokens, positions)
    dec.profile()
    for _ in range(n):
        dec.step(tokens, positions)
    t = dec.timings()
    dec.profile(False)
    flops = dec.matmul_flops(rows) * n / t["matmul"]
    c = dec.cfg  # attention reads each row's keys and values once per layer and key-value head
    kv = sum(p + 1 for p in positions) * c.n_layer * c.n_kv_head * c.head_dim * 2 * dec.pool.k.element_size()
    return (f"{name} at {rows} rows: {t['total'] / n * 1e3:.2f} ms a step, {t['matmul'] / n * 1e3:.2f} ms of it in "
            f"matmuls ({t['matmul'] / t['total']:.0%}) at {flops / 1e9:.0f} GFLOP/s = {flops / peak:.0%} of the "
            f"matmul peak; attention {t['attention'] / n * 1e3:.2f} ms, reading {kv / 1e6:.1f} MB of keys and "
            f"values ({kv * n / t['attention'] / 1e9:.0f} GB/s)")


if __name__ == "__main__":
    main()
