"""In-context copying: can the model repeat what its context holds?

    copy_losses(model, tok)      mean cross-entropy on the first and on the second copy of random token strings
    name_copy_rate(graded)       share of replies about never-seen names that write the name as asked

A string of random ordinary tokens, written twice after a BOS, cannot be predicted the first time (the loss is
about ln V or worse) and can be predicted exactly the second time by a model that looks back for the current
token and copies what followed it (an induction head, Olsson et al. 2022). A second-copy loss far below the first
is the skill; a model without it scores both copies alike. Answering with a name or a value read in the prompt
(a never-seen name, a retrieved post) is the same task on text, and `name_copy_rate` measures it there: an
unknown name has a word the model never read, so writing it back is copying or nothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colossus.data.tokenizer import Tokenizer
from colossus.evals.grading import states


def repeated_sequences(tok: Tokenizer, n: int, length: int, seed: int) -> torch.Tensor:
    """(n, 1 + 2 length) int64: <|bos|>, then `length` random ordinary (non-special) tokens, twice; seeded."""
    pool = torch.tensor([i for i in range(tok.vocab_size) if i not in tok.special_ids])
    g = torch.Generator().manual_seed(seed)
    return written_twice(pool[torch.randint(len(pool), (n, length), generator=g)], tok.bos)


def written_twice(strings: torch.Tensor, bos: int) -> torch.Tensor:
    """(n, L) strings -> (n, 1 + 2 L): each after a BOS, then again."""
    return torch.cat((torch.full((len(strings), 1), bos, dtype=strings.dtype), strings, strings), dim=1)


def copy_halves(loss: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-token losses (n, 2 L) of written_twice's strings (target j is the token at position j + 1) -> those
    of the first copy and of the second, each without its first token: after the BOS, or after the first copy's
    last token, it cannot be predicted from the context either time."""
    return loss[:, 1:length], loss[:, length + 1:]


@torch.no_grad()
def copy_losses(model: torch.nn.Module, tok: Tokenizer, n: int = 128, length: int = 32, seed: int = 0,
                batch_size: int = 32) -> dict[str, float]:
    """{"first": nats, "second": nats}: the mean cross-entropy of the tokens of the first copy and of the second
    copy of n random strings of `length` tokens, each written twice in a row (see repeated_sequences). Both
    means leave out a copy's first token (after the BOS, or after the first copy's last token, it cannot be
    predicted from the context either time), so they average the same pairs of (previous, next) tokens: a
    model blind to the context scores the two copies the same."""
    if 2 * length > model.cfg.seq_len:
        raise ValueError(f"two copies of {length} tokens are longer than the model's context ({model.cfg.seq_len})")
    if length < 2:
        raise ValueError("length must be at least 2")
    device = next(model.parameters(), torch.empty(0)).device
    seqs = repeated_sequences(tok, n, length, seed)
    losses = []
    for lo in range(0, n, batch_size):
        batch = seqs[lo: lo + batch_size].to(device)
        logits = model(batch[:, :-1]).float()  # (B, 2L, V)
        losses.append(F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none").cpu())  # (B, 2L)
    first, second = copy_halves(torch.cat(losses), length)
    return {"first": round(first.mean().item(), 4), "second": round(second.mean().item(), 4)}


def name_copy_rate(graded: list[dict], kinds: tuple[str, ...] = ("unknown",)) -> float | None:
    """Share of the graded items of these kinds whose reply contains the name the question asked about, as asked
    (an abstention names it: "Sein Zheipound does not appear in any record"; "Sein Zhegesh" is a failed copy).
    None when there is no such item."""
    items = [g for g in graded if g["kind"] in kinds and g.get("name")]
    if not items:
        return None
    return round(sum(states(g["reply"], g["name"]) for g in items) / len(items), 4)
