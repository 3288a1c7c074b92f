"""The serving engine alone (no HTTP), on any device: output tokens/s at several concurrency levels, against
Hugging Face `generate` on a Llama of the same shape, batched in waves of the same size (static batching:
what one would do without a serving engine), in one run. Random weights, greedy, a fixed 64 tokens.

    PYTHONPATH=. python benchmarks/engine_throughput.py --device cuda --dtype bfloat16
    PYTHONPATH=. python benchmarks/engine_throughput.py --device cuda --dtype bfloat16 --skip-peer --eager
    PYTHONPATH=. python benchmarks/engine_throughput.py --device cpu --models ref8.7m --concurrency 1 8

Before timing, it checks that a request batched with others gets the same greedy tokens as alone (up to
the first place where the two runs' top logits are within rounding of each other: on a GPU, batched and
single-row kernels round differently).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script

from benchmarks.serve import llama_config, shapes, world_tokenizers  # noqa: E402
from colossus.data.tokenizer import Tokenizer  # noqa: E402
from colossus.infer.cpu_decode import load_kernel  # noqa: E402
from colossus.infer.engine import Engine  # noqa: E402
from colossus.infer.sampling import SamplingParams  # noqa: E402
from colossus.model.gpt import GPT  # noqa: E402

PROMPT_TOKENS = 45


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


async def run_level(engine: Engine, prompts: list[list[int]], concurrency: int, tokens: int) -> tuple[int, float]:
    """All prompts, at most `concurrency` at once -> (output tokens, seconds)."""
    params = SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True)
    gate = asyncio.Semaphore(concurrency)
    counts = []

    async def one(p: list[int]) -> None:
        async with gate:
            n = 0
            async for d in engine.generate(p, params):
                n = d.completion_tokens
            counts.append(n)

    t = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    return sum(counts), time.perf_counter() - t


def ours(cfg, tok: Tokenizer, device: torch.device, dtype: torch.dtype, prompts, levels, tokens: int,
         cuda_graphs: bool = True) -> list[dict]:
    torch.manual_seed(0)
    model = GPT(cfg).to(device=device, dtype=dtype).eval()
    engine = Engine(model, tok, max_batch=max(c for c, _ in levels), device=str(device), cuda_graphs=cuda_graphs)
    engine.start()
    try:
        alone = asyncio.run(collect(engine, prompts[0], tokens))
        together = asyncio.run(collect_many(engine, prompts[:8], tokens))[0]
        same = next((i for i, (a, b) in enumerate(zip(alone, together, strict=True)) if a != b), len(alone))
        print(f"  colossus ({engine.kernel} step): a request batched with 7 others matches it alone for "
              f"{same}/{len(alone)} tokens", flush=True)
        asyncio.run(run_level(engine, prompts[:4], 4, tokens))  # warm-up
        rows, offset = [], 0
        for conc, n in levels:
            out, secs = asyncio.run(run_level(engine, prompts[offset:offset + n], conc, tokens))
            offset += n
            rows.append({"side": "colossus", "concurrency": conc, "requests": n, "tokens": out, "seconds": secs})
            print(f"  colossus c={conc:<3} {out / secs:9.1f} tok/s ({n} requests)", flush=True)
        return rows
    finally:
        engine.shutdown()


async def collect(engine: Engine, prompt: list[int], tokens: int) -> list[int]:
    out = []
    async for d in engine.generate(prompt, SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True)):
        out += d.token_ids
    return out


async def collect_many(engine: Engine, prompts: list[list[int]], tokens: int) -> list[list[int]]:
    return await asyncio.gather(*(collect(engine, p, tokens) for p in prompts))


def peer(cfg, device: torch.device, dtype: torch.dtype, prompts, levels, tokens: int) -> list[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # the peer's own best: every core to its ops
    try:
        return _peer(cfg, device, dtype, prompts, levels, tokens)
    finally:
        torch.set_num_threads(threads)


def _peer(cfg, device: torch.device, dtype: torch.dtype, prompts, levels, tokens: int) -> list[dict]:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(cfg)).to(device=device, dtype=dtype).eval()
    kw = {"max_new_tokens": tokens, "min_new_tokens": tokens, "do_sample": False, "pad_token_id": 0}

    def wave(batch: list[list[int]]) -> int:
        ids = torch.tensor([p[:PROMPT_TOKENS] for p in batch], device=device)
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
        return (out.shape[1] - ids.shape[1]) * len(batch)

    wave(prompts[:4])  # warm-up
    rows, offset = [], 0
    for conc, n in levels:
        sync(device)
        t = time.perf_counter()
        out = sum(wave(prompts[offset + i:offset + min(i + conc, n)]) for i in range(0, n, conc))
        sync(device)
        secs = time.perf_counter() - t
        offset += n
        rows.append({"side": "transformers", "concurrency": conc, "requests": n, "tokens": out, "seconds": secs})
        print(f"  transformers c={conc:<3} {out / secs:9.1f} tok/s ({n} requests, waves of {conc})", flush=True)
    return rows


def main() -> None:
    all_shapes = shapes()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--models", nargs="+", default=["ref8.7m", "100m"], choices=list(all_shapes))
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=64, help="requests per level (at least the concurrency)")
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--eager", action="store_true", help="on a GPU, decode op by op (no CUDA graphs): `serve --eager`")
    a = p.parse_args()
    device, dtype = torch.device(a.device), getattr(torch, a.dtype)
    if device.type == "cpu" and load_kernel() is not None:
        # as `colossus serve` does beside the C step (which has its own threads): torch only samples, and a
        # pool of torch threads made before this point would spin against the C step's (up to 4x slower)
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    print(f"engine throughput on {name}, {a.dtype}, torch {torch.__version__}; {a.output_tokens} output tokens, "
          f"{PROMPT_TOKENS}-token prompts", flush=True)
    chosen = [all_shapes[m] for m in a.models]
    with tempfile.TemporaryDirectory() as tmp:
        toks, _ = world_tokenizers({s.cfg.vocab_size for s in chosen}, Path(tmp))
        results = []
        for shape in chosen:
            tok = Tokenizer.load(toks[shape.cfg.vocab_size])
            g = torch.Generator().manual_seed(1)
            levels = [(c, max(c, a.requests)) for c in a.concurrency]
            n = 8 + sum(k for _, k in levels)
            prompts = torch.randint(3, shape.cfg.vocab_size, (n, PROMPT_TOKENS), generator=g).tolist()
            print(f"== {shape.name}", flush=True)
            rows = ours(shape.cfg, tok, device, dtype, prompts, levels, a.output_tokens, not a.eager)
            if not a.skip_peer:
                rows += peer(shape.cfg, device, dtype, prompts, levels, a.output_tokens)
            results += [{"model": shape.name, **r} for r in rows]
    print("\n| model | concurrency | colossus tok/s | transformers generate tok/s | ours / peer |")
    print("|---|---|---|---|---|")
    tput = {(r["model"], r["side"], r["concurrency"]): r["tokens"] / r["seconds"] for r in results}
    for (model, side, conc), v in tput.items():
        if side == "colossus":
            theirs = tput.get((model, "transformers", conc))
            print(f"| {model} | {conc} | {v:,.1f} | {f'{theirs:,.1f}' if theirs else ''} | "
                  f"{f'{v / theirs:.2f}x' if theirs else ''} |")


if __name__ == "__main__":
    main()
