"""How many steps a fresh model of the cpu preset's shape takes to learn to copy from its context, by optimizer
and by the alphabet of the copied strings, in one run.

    PYTHONPATH=. python benchmarks/copy_drill.py [--steps 300] [--alphabets 64 512 4000] [--optimizers muon adamw]
        [--lengths 8 24] [--batch 64] [--copy-head] [--out F.json]

Each row trains a fresh GPT (4 layers, d_model 192, 4 heads, vocabulary 4096, the cpu preset's shape) on one
task only: a BOS, then a string of L tokens drawn uniformly from the first `alphabet` ordinary ids, written
twice (colossus.evals.copying's task), L drawn for each step from --lengths MIN MAX. The first copy cannot be
predicted (its loss stays near ln alphabet); the second can, exactly, by a model that looks back for the current
token and copies what followed it (an induction head). With one length only (--lengths 16 16) the copy always
sits L + 1 tokens back, and a model can learn to copy from that offset instead: so every 50 steps the model is
also probed on strings of --probe-length (32, colossus.evals.copying's length, never trained on), where only an
induction head helps. A row reports the first probe whose held-out second copy is below 1 nat (None: not within
--steps), and both copies' losses at the end, on the trained lengths and on the probe.
With --copy-head the model has the copy head (colossus.model.copy_head), whose gate adds to the logit of the
token that followed the current one's last occurrence. Optimizers: `muon` is the cpu preset's (Muon for the
matrices of the blocks, AdamW for the rest, colossus.train.optim.build_optimizers, no decay), `adamw` is AdamW for
everything at --adamw-lr.
Seeded: the same rows on the same host, to float-sum order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.cpu_header import cpu_facts, describe  # noqa: E402
from colossus.evals.copying import copy_halves, written_twice  # noqa: E402
from colossus.model.config import ModelConfig  # noqa: E402
from colossus.model.gpt import GPT  # noqa: E402
from colossus.train.optim import build_optimizers  # noqa: E402

FIRST_ORDINARY = 16  # ids below it are left out (the special tokens sit at the start of the vocabulary)


def strings(g: torch.Generator, alphabet: int, n: int, length: int) -> torch.Tensor:
    return written_twice(torch.randint(FIRST_ORDINARY, FIRST_ORDINARY + alphabet, (n, length), generator=g), 0)


@torch.no_grad()
def probe(model: GPT, alphabet: int, length: int, seed: int, n: int = 64) -> tuple[float, float]:
    """The first and second copies' mean losses on n fixed strings of `length` tokens."""
    x = strings(torch.Generator().manual_seed(seed + 2), alphabet, n, length)
    loss = F.cross_entropy(model(x[:, :-1]).transpose(1, 2), x[:, 1:], reduction="none")
    first, second = copy_halves(loss, length)
    return first.mean().item(), second.mean().item()


def train_row(optimizer: str, alphabet: int, steps: int, lengths: tuple[int, int], probe_length: int, batch: int,
              lr: float, adamw_lr: float, muon_lr: float, seed: int, copy_head: bool = False) -> dict:
    torch.manual_seed(seed)
    model = GPT(ModelConfig(vocab_size=4096, seq_len=2 * max(lengths[1], probe_length) + 1, n_layer=4, d_model=192,
                            n_head=4, n_kv_head=4, copy_head=copy_head))
    if optimizer == "muon":
        opts = build_optimizers(model, lr=lr, embed_lr=3 * lr, head_lr=lr, weight_decay=0.0, muon=True,
                                muon_lr=muon_lr)
    else:
        opts = [torch.optim.AdamW(model.parameters(), lr=adamw_lr, betas=(0.9, 0.95), weight_decay=0.0)]
    g = torch.Generator().manual_seed(seed + 1)
    learned_at, t0 = None, time.perf_counter()
    for step in range(1, steps + 1):
        length = int(torch.randint(lengths[0], lengths[1] + 1, (1,), generator=g))
        x = strings(g, alphabet, batch, length)
        loss = F.cross_entropy(model(x[:, :-1]).transpose(1, 2), x[:, 1:], reduction="none")  # (B, 2L)
        first, second = (h.mean().item() for h in copy_halves(loss, length))
        loss.mean().backward()
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == steps:
            p_first, p_second = probe(model, alphabet, probe_length, seed)
            if learned_at is None and p_second < 1.0:
                learned_at = step
            print(f"  {optimizer} alphabet {alphabet} step {step}: trained length {length}: first copy {first:.2f}, "
                  f"second {second:.3f}; probe length {probe_length}: first {p_first:.2f}, second {p_second:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"optimizer": optimizer, "copy_head": copy_head, "alphabet": alphabet, "steps": steps,
            "lengths": list(lengths),
            "learned_at": learned_at, "first_copy_loss": round(first, 3), "second_copy_loss": round(second, 3),
            "probe_length": probe_length, "probe_first_copy_loss": round(p_first, 3),
            "probe_second_copy_loss": round(p_second, 3), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--alphabets", type=int, nargs="+", default=[64, 512, 4000])
    ap.add_argument("--optimizers", nargs="+", default=["muon", "adamw"], choices=["muon", "adamw"])
    ap.add_argument("--lengths", type=int, nargs=2, default=[8, 24], metavar=("MIN", "MAX"))
    ap.add_argument("--probe-length", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3, help="AdamW's rate for the vectors and head beside Muon")
    ap.add_argument("--muon-lr", type=float, default=0.02)
    ap.add_argument("--adamw-lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copy-head", action="store_true", help="the model has a copy head (colossus.model.copy_head)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    facts = cpu_facts(torch.get_num_threads())
    print(describe(facts), flush=True)
    rows = []
    for alphabet in args.alphabets:
        for optimizer in args.optimizers:
            rows.append(train_row(optimizer, alphabet, args.steps, tuple(args.lengths), args.probe_length,
                                  args.batch, args.lr, args.adamw_lr, args.muon_lr, args.seed, args.copy_head))
    print(f"\n| optimizer | alphabet | lengths | probe second copy < 1 nat at step | first / second copy loss "
          f"after {args.steps}, trained lengths | the same, probe length {args.probe_length} |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['optimizer']} | {r['alphabet']} | {r['lengths'][0]}-{r['lengths'][1]} | {r['learned_at']} | "
              f"{r['first_copy_loss']:.2f} / {r['second_copy_loss']:.3f} | "
              f"{r['probe_first_copy_loss']:.2f} / {r['probe_second_copy_loss']:.3f} |")
    if args.out:
        run_args = {k: str(v) for k, v in vars(args).items()}
        args.out.write_text(json.dumps({"machine": facts, "args": run_args, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
