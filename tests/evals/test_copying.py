"""Copy losses on models whose answer is known: one blind to the context scores both copies the same, a
hand-made copier scores the second copy near zero, and a tiny GPT trained here on repeated strings learns to
copy (its second-copy loss falls far below the first); the strings are seeded and made of ordinary tokens."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from colossus.evals.copying import copy_losses, name_copy_rate, repeated_sequences
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT


class Bigram(nn.Module):
    """Logits of the next token from the current token alone: blind to the rest of the context."""

    def __init__(self, vocab_size: int, seq_len: int = 128):
        super().__init__()
        self.cfg = ModelConfig(vocab_size=vocab_size, seq_len=seq_len, n_layer=1, d_model=8, n_head=1, n_kv_head=1)
        self.table = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x]


class Copier(Bigram):
    """Looks back for the earlier occurrences of the current token and shares its mass among the tokens that
    followed them; uniform where the current token has not occurred before."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape
        out = torch.zeros(B, T, self.cfg.vocab_size)
        for b in range(B):
            for t in range(T):
                earlier = (x[b, :t] == x[b, t]).nonzero()[:, 0]
                out[b, t, x[b, earlier + 1]] = 30.0
        return out


def test_sequences_are_bos_then_one_string_twice_of_ordinary_tokens_and_seeded(tok):
    s = repeated_sequences(tok, n=5, length=12, seed=3)
    assert s.shape == (5, 25) and s.dtype == torch.int64
    assert (s[:, 0] == tok.bos).all()
    assert torch.equal(s[:, 1:13], s[:, 13:])
    body = set(s[:, 1:].flatten().tolist())
    assert not body & tok.special_ids and max(body) < tok.vocab_size
    assert torch.equal(s, repeated_sequences(tok, n=5, length=12, seed=3))
    assert not torch.equal(s, repeated_sequences(tok, n=5, length=12, seed=4))
    assert len({tuple(r) for r in s[:, 1:13].tolist()}) == 5  # each row its own string


def test_a_model_blind_to_the_context_scores_both_copies_the_same(tok):
    """The two means average the same (previous, next) pairs, so a bigram model gives them exactly."""
    got = copy_losses(Bigram(tok.vocab_size), tok, n=16, length=20, seed=1)
    assert got["first"] == pytest.approx(got["second"], abs=1e-4)
    assert got["first"] > 2.0


def test_a_copier_scores_the_second_copy_near_zero_and_the_first_at_ln_v_or_worse(tok):
    got = copy_losses(Copier(tok.vocab_size), tok, n=8, length=16, seed=0)
    assert got["second"] < 0.1  # unsure only after a token that occurs twice in the string
    assert got["first"] > 0.98 * math.log(tok.vocab_size)  # uniform, or wrong where a token repeats


def test_an_untrained_gpt_copies_nothing_and_the_result_is_deterministic(tok, tiny_model):
    a = copy_losses(tiny_model, tok, n=24, length=24, seed=5, batch_size=7)  # batches of 7: a ragged last one
    assert a == copy_losses(tiny_model, tok, n=24, length=24, seed=5, batch_size=24)
    assert set(a) == {"first", "second"}
    assert a["second"] == pytest.approx(a["first"], rel=0.02)
    assert a["first"] == pytest.approx(math.log(tiny_model.cfg.vocab_size), rel=0.02)


def test_two_copies_longer_than_the_context_are_refused(tok, tiny_model):
    with pytest.raises(ValueError, match="context"):
        copy_losses(tiny_model, tok, length=tiny_model.cfg.seq_len // 2 + 1)


def test_a_tiny_gpt_trained_on_repeated_strings_learns_to_copy(tok):
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, seq_len=32, n_layer=2, d_model=64, n_head=2, n_kv_head=2))
    before = copy_losses(model, tok, n=64, length=16, seed=99)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(300):  # the second-copy loss falls from ln V to ~0.05 between steps 100 and 300
        s = repeated_sequences(tok, n=32, length=16, seed=step + 1000)  # never the evaluation's seed
        loss = model(s[:, :-1], s[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    after = copy_losses(model.eval(), tok, n=64, length=16, seed=99)
    assert before["second"] == pytest.approx(before["first"], rel=0.05)
    assert after["second"] < 0.25 * after["first"]


def test_name_copy_rate_counts_replies_that_write_the_asked_name(tok):
    graded = [{"kind": "unknown", "name": "Sein Zheipound", "reply": "Sein Zheipound does not appear in any record."},
              {"kind": "unknown", "name": "Tefi Tamaihend", "reply": "Tefi Tamaiist does not appear in any record."},
              {"kind": "unknown", "name": "Kro Vale", "reply": "kro vale was born in Dor Falls."},  # any case
              {"kind": "known", "name": "Ada Sitor", "reply": "I don't know."},  # another kind: not counted
              {"kind": "recombined", "name": "Ada Vale", "reply": "Ada Vale is a painter."}]
    assert name_copy_rate(graded) == pytest.approx(2 / 3, abs=1e-4)
    assert name_copy_rate(graded, kinds=("unknown", "recombined")) == 0.75
    assert name_copy_rate([g for g in graded if g["kind"] == "known"]) is None
