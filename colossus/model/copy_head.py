"""The copy head: a model's way to copy from its own context, as a cache language model does.

For each position t the head looks back for earlier occurrences of what it reads and proposes the token that
came right after each of four of them, its *follow tokens* (none where there is no such occurrence):

    0. after the most recent earlier occurrence of token t;
    1. after the first occurrence of token t (the name as the question wrote it, when posts later mention
       others who share its first word);
    2. after the most recent earlier occurrence of the pair (token t-1, token t) (the digits of a date, where
       one digit alone recurs everywhere);
    3. after the second most recent earlier occurrence of token t (a post that names its subject twice, once
       for each fact it states: both continuations are proposed, and the model's own logits choose the one
       the question asks for).

A gate per pointer, computed from the final hidden state, is added to the logit of its token:

    logits[t, follow[t, k]] += gate_k(h[t])

so a model that has learned when copying is right (the second time it writes a name, the value it reads from
a retrieved post) continues the string as it stood in the context, for any token, seen in training or not.
An induction head computes the same thing with two attention layers, and a model of the cpu preset's size
forms one only after about 2M tokens of copying alone (docs/benchmarks.md, "In-context copying"); with the
copy head it copies strings it never saw within 50 steps.

`follow_ids` gives every position's follow tokens of whole sequences at once (training, a prefill from
position 0); `FollowMap` keeps one sequence's, a token at a time (a KV cache, the serving engine)."""

from __future__ import annotations

import torch

NONE = -1  # no such occurrence: nothing to copy
POINTERS = 4  # follow tokens per position: latest occurrence, first occurrence, latest of the pair, second latest
NO_FOLLOW = (NONE,) * POINTERS  # a position's follow tokens when there is nothing to copy


def _follow(keys: torch.Tensor, idx: torch.Tensor, which: tuple[str, ...]) -> list[torch.Tensor]:
    """For each position t, idx at j + 1 for the latest ("latest"), the second latest ("second") or the first
    ("first") j < t with keys[j] == keys[t], or NONE: one tensor per name in `which`. One stable sort per row,
    shared by them all: equal keys end up side by side in the order of their positions."""
    B, T = idx.shape
    order = torch.sort(keys, dim=1, stable=True).indices  # (B, T) positions, grouped by key, rising
    k = torch.gather(keys, 1, order)
    outs = []
    for w in which:
        gap = 2 if w == "second" else 1  # how many places before in the group the occurrence is
        same = torch.zeros_like(order, dtype=torch.bool)
        same[:, gap:] = k[:, gap:] == k[:, :-gap]  # that many earlier occurrences exist
        if w == "first":  # the group's first position: carried forward from each group's start
            start = torch.where(same, torch.zeros_like(order), torch.arange(T, device=idx.device).expand(B, T))
            src = torch.gather(order, 1, start.cummax(dim=1).values)
        else:
            src = torch.zeros_like(order)
            src[:, gap:] = order[:, :-gap]
        out = torch.gather(idx, 1, (src + 1).clamp(max=T - 1))
        out = torch.where(same, out, torch.full_like(out, NONE))
        outs.append(torch.empty_like(idx).scatter_(1, order, out))
    return outs


def follow_ids(idx: torch.Tensor) -> torch.Tensor:
    """idx (B, T) -> (B, T, POINTERS): each position's follow tokens (see the module's docstring)."""
    pairs = torch.empty_like(idx)
    pairs[:, 1:] = idx[:, :-1] * (1 << 32) + idx[:, 1:]  # one key per pair (ids are below 2**31)
    pairs[:, 0] = -1  # the first position has no pair: matches nothing
    latest, first, second = _follow(idx, idx, ("latest", "first", "second"))
    (pair,) = _follow(pairs, idx, ("latest",))
    return torch.stack((latest, first, pair, second), -1)


class FollowMap:
    """One sequence's follow tokens, kept as its tokens arrive: `extend` takes the next tokens and returns their
    follow ids, as follow_ids gives them for the whole sequence."""

    __slots__ = ("after", "first", "after_pair", "after_second", "last", "before")

    def __init__(self) -> None:
        self.after: dict[int, int] = {}  # token -> the token after its most recent occurrence
        self.first: dict[int, int] = {}  # token -> the token after its first occurrence
        self.after_pair: dict[tuple[int, int], int] = {}  # (token, token) -> the token after its latest occurrence
        self.after_second: dict[int, int] = {}  # token -> the token after its second most recent occurrence
        self.last: int | None = None  # the sequence's last token so far
        self.before: int | None = None  # and the one before it

    def extend(self, tokens: list[int]) -> list[tuple[int, int, int, int]]:
        out = []
        after, first, after_pair, last, before = self.after, self.first, self.after_pair, self.last, self.before
        second = self.after_second
        for t in tokens:
            if last is not None:  # the pair (before, last) and the token last are now followed by t
                if last in after:
                    second[last] = after[last]
                after[last] = t
                first.setdefault(last, t)
                if before is not None:
                    after_pair[before, last] = t
            pair = after_pair.get((last, t), NONE) if last is not None else NONE
            out.append((after.get(t, NONE), first.get(t, NONE), pair, second.get(t, NONE)))
            before, last = last, t
        self.last, self.before = last, before
        return out


def add_copy(logits: torch.Tensor, gate: torch.Tensor, follow: torch.Tensor) -> torch.Tensor:
    """logits (..., V), gate and follow (..., POINTERS) -> logits with each pointer's gate added at its follow
    token (pointers at NONE add nothing). Out of place, so autograd reaches the gates."""
    bonus = torch.where(follow >= 0, gate.to(logits.dtype), torch.zeros((), dtype=logits.dtype, device=logits.device))
    return logits.scatter_add(-1, follow.clamp(min=0), bonus)
