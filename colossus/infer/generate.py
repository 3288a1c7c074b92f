"""Generation with a KV cache: a prompt is prefilled once, then each step feeds one token.

`stream` yields tokens one at a time for a single conversation (the terminal chat). `generate_batch`
runs many prompts at once for evaluation: prompts of equal length share a batch, so every row of a
batch sits at the same position and a plain contiguous cache serves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from colossus.errors import ColossusError
from colossus.infer.sampling import SamplingParams, sample
from colossus.model.gpt import GPT
from colossus.model.kv_cache import KVCache


@dataclass
class Completion:
    ids: list[int]  # generated ids, without the stop token
    probs: list[float]  # probability the model gave each generated id
    finish_reason: str  # stop | length


def check_context(model: GPT, prompt_len: int, max_tokens: int) -> None:
    limit = model.cfg.seq_len
    if prompt_len + max_tokens > limit:
        raise ColossusError(f"prompt of {prompt_len} tokens + max_tokens {max_tokens} exceeds the model's "
                            f"context of {limit} tokens")


@torch.inference_mode()
def stream(model: GPT, prompt: list[int], params: SamplingParams, stop_ids: set[int],
           device: str | torch.device | None = None) -> Iterator[tuple[int, float]]:
    """Yield (token id, its probability) until a stop id (not yielded) or max_tokens. device: the model's
    unless given."""
    check_context(model, len(prompt), params.max_tokens)
    device = device or next(model.parameters()).device
    cache = KVCache(model.cfg, 1, len(prompt) + params.max_tokens, device=device,
                    dtype=next(model.parameters()).dtype)
    gen = None
    if params.seed is not None:
        gen = torch.Generator(device=device).manual_seed(params.seed)
    logits = model(torch.tensor([prompt], device=device), cache=cache)[:, -1]
    for _ in range(params.max_tokens):
        tok = sample(logits, params.temperature, params.top_k, params.top_p, gen)
        t = int(tok.item())
        if t in stop_ids:
            return
        yield t, float(logits.softmax(-1)[0, t])
        logits = model(tok.view(1, 1), cache=cache)[:, -1]


@torch.inference_mode()
def generate_batch(model: GPT, prompts: list[list[int]], max_tokens: int, stop_ids: set[int],
                   batch_size: int = 64, device: str | torch.device | None = None) -> list[Completion]:
    """Greedy completions of many prompts, batched by prompt length, on device (the model's unless given)."""
    device = device or next(model.parameters()).device
    out: list[Completion | None] = [None] * len(prompts)
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        by_len[len(p)].append(i)
    stop = torch.tensor(sorted(stop_ids), device=device)
    for length, idxs in sorted(by_len.items()):
        steps = min(max_tokens, model.cfg.seq_len - length)
        if steps < 1:
            raise ColossusError(f"a prompt of {length} tokens leaves no room in the model's context")
        for lo in range(0, len(idxs), batch_size):
            rows = idxs[lo: lo + batch_size]
            B = len(rows)
            cache = KVCache(model.cfg, B, length + steps, device=device, dtype=next(model.parameters()).dtype)
            logits = model(torch.tensor([prompts[i] for i in rows], device=device), cache=cache)[:, -1]
            ids = torch.zeros(B, steps, dtype=torch.long, device=device)
            probs = torch.zeros(B, steps, device=device)
            finished = torch.zeros(B, dtype=torch.bool, device=device)
            n = 0
            for n in range(1, steps + 1):
                p = logits.float().softmax(-1)
                tok = p.argmax(-1)
                ids[:, n - 1], probs[:, n - 1] = tok, p.gather(1, tok[:, None])[:, 0]
                finished |= torch.isin(tok, stop)
                if bool(finished.all()) or n == steps:
                    break
                logits = model(tok[:, None], cache=cache)[:, -1]
            for r, i in enumerate(rows):
                row = ids[r, :n].tolist()
                cut = next((j for j, t in enumerate(row) if t in stop_ids), None)
                reason = "stop" if cut is not None else "length"
                cut = len(row) if cut is None else cut
                out[i] = Completion(row[:cut], probs[r, :cut].tolist(), reason)
    return out  # type: ignore[return-value]
