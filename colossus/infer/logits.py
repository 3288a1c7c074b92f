"""Per-row sampling for a whole batch at once: every row of the engine's decode step has its own
SamplingParams, and one set of tensor ops serves them all.

Order (as HF and vLLM): penalties on the raw logits -> greedy rows take the argmax; the other rows
are divided by their temperature -> top-k -> top-p -> min-p -> one draw. Filters only zero
probabilities and never reorder the vocabulary, and each row's draw is one uniform number from that
row's own generator (a seeded random.Random) fed through the row's CDF: a row's token therefore
depends on its own logits, parameters and generator only, never on which other rows share the batch
(same seed, same text, alone or batched).

Logprobs are those of the model (log-softmax of the raw logits, before penalties and filters), as
the OpenAI API reports them."""

from __future__ import annotations

import random

import torch

from colossus.infer.sampling import SamplingParams

U_MAX = 1.0 - 2.0**-20  # a draw is kept this far below the total, well clear of float32 rounding


class RowParams:
    """The sampling parameters of the batch's rows as tensors; rebuilt only when rows join or leave."""

    def __init__(self, params: list[SamplingParams], rngs: list[random.Random], vocab_size: int,
                 device: torch.device | str):
        def col(values, dtype=torch.float32) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=device)[:, None]  # (B, 1)

        def rows(pred) -> torch.Tensor | None:
            idx = [i for i, p in enumerate(params) if pred(p)]
            return torch.tensor(idx, dtype=torch.long, device=device) if idx else None

        self.n, self.rngs, self.vocab_size = len(params), rngs, vocab_size
        greedy = [p.greedy for p in params]
        self.all_greedy, self.any_greedy = all(greedy), any(greedy)
        self.greedy = torch.tensor(greedy, device=device)
        self.temperature = col([1.0 if p.greedy else p.temperature for p in params])
        self.top_k_rows = rows(lambda p: not p.greedy and 0 < p.top_k < vocab_size)
        if self.top_k_rows is not None:
            ks = [p.top_k for p in params if not p.greedy and 0 < p.top_k < vocab_size]
            self.top_k, self.top_k_max = col(ks, torch.long), max(ks)
        self.top_p_rows = rows(lambda p: not p.greedy and p.top_p < 1)
        if self.top_p_rows is not None:
            self.top_p = col([p.top_p for p in params if not p.greedy and p.top_p < 1])
        self.use_min_p = any(p.min_p > 0 and not p.greedy for p in params)
        self.min_p = col([p.min_p for p in params])
        self.use_repetition = any(p.repetition_penalty != 1 for p in params)
        self.repetition = col([p.repetition_penalty for p in params])
        self.use_additive = any(p.presence_penalty or p.frequency_penalty for p in params)
        self.presence = col([p.presence_penalty for p in params])
        self.frequency = col([p.frequency_penalty for p in params])
        self.use_penalties = self.use_repetition or self.use_additive
        lp = [(i, p.logprobs) for i, p in enumerate(params) if p.logprobs is not None]
        self.logprob_list = [i for i, _ in lp]
        self.logprob_rows = torch.tensor(self.logprob_list, dtype=torch.long, device=device) if lp else None
        self.logprob_k = max((k for _, k in lp), default=0)


def apply_penalties(logits: torch.Tensor, rp: RowParams, counts: torch.Tensor,
                    prompt_seen: torch.Tensor) -> torch.Tensor:
    """logits (B, V); counts (B, V): times each token was generated; prompt_seen (B, V): in the prompt.
    Repetition (HF/vLLM) looks at prompt and output, presence/frequency (OpenAI) at the output only."""
    if rp.use_repetition:
        seen = prompt_seen | (counts > 0)
        scaled = torch.where(logits > 0, logits / rp.repetition, logits * rp.repetition)
        logits = torch.where(seen, scaled, logits)
    if rp.use_additive:
        logits = logits - rp.frequency * counts - rp.presence * (counts > 0).float()
    return logits


def argmax_rows(x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """x (B, V) -> x.argmax(-1), the same ids (first maximum, NaN counts as the largest) several times faster
    on CPU: torch's argmax over a row is scalar code, its amax vectorised. The row's maximum is found per
    chunk (amax), then the first chunk holding it is searched alone."""
    B, V = x.shape
    if B < 4 or V % chunk or 4 * chunk > V:  # a row or two: one plain argmax costs less than four ops
        return x.argmax(-1)
    xc = x.view(B, V // chunk, chunk)
    where = xc.amax(-1).argmax(-1)  # (B,) the first chunk that holds the row's maximum
    inside = xc.gather(1, where[:, None, None].expand(B, 1, chunk)).squeeze(1).argmax(-1)
    return where * chunk + inside


def _top_p_floor(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """probs (R, V), top_p (R, 1) -> (R, 1) the smallest probability in each row's nucleus. Sorting a row of
    8k costs ~1 ms on CPU and the nucleus is usually among the most likely few, so the largest 64 come
    first (topk), then 1024, and only then whole rows. The floor is the same: a head is the sorted row's
    beginning with the same running sums, and once a head's mass reaches p nothing after it is kept."""
    V = probs.size(-1)
    for k in [*(k for k in (64, 1024) if k < V), V]:
        desc = probs.topk(k, dim=-1).values if k < V else probs.sort(dim=-1, descending=True).values
        before = desc.cumsum(-1) - desc  # the mass of the more likely tokens
        if k >= V or bool((before[:, -1:] >= top_p).all()):
            n_keep = (before < top_p).sum(-1, keepdim=True).clamp_min(1)  # the top token stays (even if p is 0)
            return desc.gather(1, n_keep - 1)
    raise AssertionError("unreachable: the last pass sorts whole rows")


def sample_rows(logits: torch.Tensor, rp: RowParams) -> torch.Tensor:
    """logits (B, V), penalties applied -> token ids (B,)."""
    if rp.all_greedy:
        return argmax_rows(logits)
    x = logits / rp.temperature
    if rp.top_k_rows is not None:  # keep tokens at least as likely as the row's k-th
        sub = x.index_select(0, rp.top_k_rows)
        kth = sub.topk(rp.top_k_max, dim=-1).values.gather(1, rp.top_k - 1)
        x = x.index_copy(0, rp.top_k_rows, sub.masked_fill(sub < kth, float("-inf")))
    probs = x.softmax(-1)
    if rp.top_p_rows is not None:  # the smallest set of most likely tokens that reaches p
        sub = probs.index_select(0, rp.top_p_rows)
        floor = _top_p_floor(sub, rp.top_p)
        probs = probs.index_copy(0, rp.top_p_rows, sub.masked_fill(sub < floor, 0.0))
    if rp.use_min_p:
        probs = probs.masked_fill(probs < rp.min_p * probs.amax(-1, keepdim=True), 0.0)
    cdf = probs.cumsum(-1)  # a dropped token adds 0 to it, so no draw can land on one...
    u = torch.tensor([[min(g.random(), U_MAX)] for g in rp.rngs], device=logits.device)
    tokens = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)  # ...nor past the last kept one
    if rp.any_greedy:
        tokens = torch.where(rp.greedy, argmax_rows(logits), tokens)
    return tokens


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, rp: RowParams
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """For the rows that asked for logprobs: the chosen token's logprob (R,), and the top-k logprobs
    and ids (R, k) with k the largest any row asked for."""
    if rp.logprob_rows is None:
        return None
    lp = logits.index_select(0, rp.logprob_rows).log_softmax(-1)
    chosen = lp.gather(1, tokens.index_select(0, rp.logprob_rows)[:, None]).squeeze(1)
    top = lp.topk(min(rp.logprob_k, lp.size(-1)), dim=-1)
    return chosen, top.values, top.indices
