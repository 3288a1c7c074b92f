"""Choosing the next token from logits: temperature, top-k, top-p (nucleus), a seeded generator.

`SamplingParams` is every per-request choice the serving engine honours (colossus/infer/logits.py
applies them to a whole batch at once); `sample` and `filter_logits` are the single-batch path that
colossus/infer/generate.py uses."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from colossus.errors import ColossusError

GREEDY_BELOW = 1e-5
"""A temperature below this picks the most likely token (as vLLM): dividing float32 logits by a much smaller one
overflows them."""


@dataclass
class SamplingParams:
    temperature: float = 0.7
    """0 (or below GREEDY_BELOW) picks the most likely token (greedy)."""
    top_k: int = 0
    """Keep only the k most likely tokens (0: all)."""
    top_p: float = 1.0
    """Keep the smallest set of tokens whose probability reaches p."""
    max_tokens: int = 256
    """Most tokens to generate (the end-of-turn token counts as one)."""
    seed: int | None = None
    """Same seed, same prompt, same text: also when the engine batches the request with others."""
    min_p: float = 0.0
    """Drop tokens less likely than min_p times the most likely one (0: off)."""
    presence_penalty: float = 0.0
    """OpenAI semantics, -2..2: subtracted once from the logit of every token already generated."""
    frequency_penalty: float = 0.0
    """OpenAI semantics, -2..2: subtracted from a token's logit once per time it was generated."""
    repetition_penalty: float = 1.0
    """HF/vLLM semantics, > 0 (1: off): the logit of a token seen in the prompt or the output is divided
    by it when positive, multiplied when negative."""
    stop: tuple[str, ...] = ()
    """Stop strings: generation ends where one appears, and the matched text is not returned."""
    logprobs: int | None = None
    """None: off. k >= 0: return the chosen token's logprob and the k most likely tokens'."""
    ignore_eos: bool = False
    """Keep going past the end-of-turn token (benchmarks: fixed-length generation)."""

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> ColossusError:
            return ColossusError(f"{name} must be {allowed}, not {getattr(self, name)!r}")

        def finite(name: str) -> float:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ColossusError(f"{name} must be a finite number, not {v!r}")
            return float(v)

        if finite("temperature") < 0:
            raise bad("temperature", ">= 0")
        if not 0 < finite("top_p") <= 1:
            raise bad("top_p", "in (0, 1]")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise bad("top_k", "an integer >= 0")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise bad("max_tokens", "an integer >= 1")
        if self.seed is not None and not isinstance(self.seed, int):
            raise bad("seed", "an integer or None")
        if not 0 <= finite("min_p") <= 1:
            raise bad("min_p", "in [0, 1]")
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2 <= finite(name) <= 2:
                raise bad(name, "in [-2, 2]")
        if finite("repetition_penalty") <= 0:
            raise bad("repetition_penalty", "> 0")
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(self.stop)
        if not all(isinstance(s, str) and s for s in self.stop):
            raise bad("stop", "a list of non-empty strings")
        if self.logprobs is not None and (not isinstance(self.logprobs, int) or self.logprobs < 0):
            raise bad("logprobs", "None or an integer >= 0")

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    @property
    def has_penalties(self) -> bool:
        return self.presence_penalty != 0 or self.frequency_penalty != 0 or self.repetition_penalty != 1


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """logits (B, V) with the excluded tokens set to -inf."""
    if top_k > 0 and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens before it already reach top_p (the top token always stays)
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    return logits


def sample(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) -> token ids (B,)."""
    if temperature < GREEDY_BELOW:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
