"""Time of one engine decode step, the model alone (no HTTP, no sampling), for the serving benchmark's
reference shape: GPT.decode_step (packed weights) against GPT.forward with the same KV pool (the peer,
measured in the same run). Shows how much of a served token is the model and how much the server.

    PYTHONPATH=. python benchmarks/decode_step.py [--threads 1] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import torch

from colossus.infer.kv_pool import SlotPool
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT

REF = ModelConfig(vocab_size=8192, seq_len=512, n_layer=6, d_model=256, n_head=4, n_kv_head=4, mlp="swiglu",
                  mlp_ratio=3.75)


def time_steps(step, pool: SlotPool, positions: list[int], n: int) -> float:
    """Mean seconds per decode step (logits, then the greedy token) of one row per position."""
    tokens = torch.randint(0, REF.vocab_size, (len(positions),))
    for _ in range(10):
        step(tokens, positions, pool).argmax(-1)
    t = time.perf_counter()
    for _ in range(n):
        step(tokens, positions, pool).argmax(-1)
    return (time.perf_counter() - t) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (colossus serve uses cores - 1)")
    p.add_argument("--steps", type=int, default=200)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = GPT(REF).eval()

    def packed(tokens, positions, pool):
        view = pool.decode_view(positions)
        return model.decode_step(tokens, view.positions, view)

    def forward(tokens, positions, pool):
        view = pool.decode_view(positions)
        return model(tokens[:, None], cache=view, positions=view.positions[:, None])[:, -1]

    print(f"ref8.7m ({model.num_params() / 1e6:.2f}M parameters), {a.threads} thread(s), {a.steps} steps each")
    print("| rows | decode_step ms | tok/s | forward(cache) ms | tok/s | speed-up |")
    print("|---|---|---|---|---|---|")
    with torch.inference_mode():
        for batch in (1, 8, 32):
            pool = SlotPool(REF, 32, REF.seq_len)
            positions = [60 + i for i in range(batch)]
            zeros = torch.zeros(batch, dtype=torch.long)
            assert torch.allclose(forward(zeros, positions, pool), packed(zeros, positions, pool), atol=1e-4), \
                "decode_step and forward disagree"
            tp = time_steps(packed, pool, positions, a.steps)
            tf = time_steps(forward, pool, positions, a.steps)
            print(f"| {batch} | {tp * 1e3:.2f} | {batch / tp:,.0f} | {tf * 1e3:.2f} | {batch / tf:,.0f} "
                  f"| {tf / tp:.2f}x |")


if __name__ == "__main__":
    main()
