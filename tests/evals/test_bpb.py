"""Bits per byte on texts whose loss is known exactly: a model uniform over its vocabulary (ln V nats a
token), a bigram table whose loss is summed by hand, and a real model on a document longer than its
context, against the windows scored one by one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from colossus.evals.bpb import bits_per_byte
from colossus.model.config import ModelConfig

TEXT = "Sitor Vell was born in Dravosk Falls and plays the cello; café, naïve, 48,000 — 😀."


class Uniform(nn.Module):
    """Equal logits everywhere; records the inputs it was given."""

    def __init__(self, vocab_size: int, seq_len: int):
        super().__init__()
        self.cfg = ModelConfig(vocab_size=vocab_size, seq_len=seq_len, n_layer=1, d_model=8, n_head=1, n_kv_head=1)
        self.calls: list[list[int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] == 1 and x.shape[1] <= self.cfg.seq_len
        self.calls.append(x[0].tolist())
        return torch.zeros(*x.shape, self.cfg.vocab_size)


class Bigram(Uniform):
    """The logits of the next token depend on the current token alone: table[current]."""

    def __init__(self, table: torch.Tensor, seq_len: int):
        super().__init__(table.shape[0], seq_len)
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        super().forward(x)
        return self.table[x]


def doc_ids(tok, text: str) -> list[int]:
    return [tok.bos] + tok.encode(text)


def test_uniform_model_gives_log2_v_bits_a_token_over_the_texts_utf8_bytes(tok):
    n = len(tok.encode(TEXT))
    nbytes = len(TEXT.encode("utf-8"))
    assert nbytes > len(TEXT)  # the multi-byte characters count as their bytes
    for V in (tok.vocab_size, 1000):
        got = bits_per_byte(Uniform(V, 512), tok, [TEXT])
        assert got == pytest.approx(n * math.log2(V) / nbytes, rel=1e-6)


def test_several_documents_pool_their_bits_and_bytes(tok):
    texts = [TEXT, "A second, shorter one.", "x"]
    n = sum(len(tok.encode(t)) for t in texts)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    got = bits_per_byte(Uniform(tok.vocab_size, 512), tok, texts)
    assert got == pytest.approx(n * math.log2(tok.vocab_size) / nbytes, rel=1e-6)


def test_empty_documents_are_skipped(tok):
    m = Uniform(tok.vocab_size, 512)
    assert bits_per_byte(m, tok, ["", TEXT, ""]) == bits_per_byte(m, tok, [TEXT])
    assert bits_per_byte(m, tok, []) == 0.0 and bits_per_byte(m, tok, [""]) == 0.0


@pytest.mark.parametrize("ctx_of", [lambda n: n + 5, lambda n: n, lambda n: n - 1, lambda n: 7, lambda n: 1])
def test_windows_cover_every_token_once(tok, ctx_of):
    """Whatever the context, the windows' inputs laid end to end are the document less its last token
    (each input predicts the token after it), no window is longer than the context, and the total is the
    same as in one window."""
    ids = doc_ids(tok, TEXT)
    n = len(ids) - 1  # tokens predicted
    ctx = ctx_of(n)
    m = Uniform(tok.vocab_size, ctx)
    got = bits_per_byte(m, tok, [TEXT])
    assert [t for call in m.calls for t in call] == ids[:-1]
    assert len(m.calls) == math.ceil(n / ctx)
    assert all(len(c) == ctx for c in m.calls[:-1])
    assert got == pytest.approx(n * math.log2(tok.vocab_size) / len(TEXT.encode("utf-8")), rel=1e-6)


@pytest.mark.parametrize("ctx", [512, 10, 3, 1])
def test_bigram_model_loss_is_the_hand_summed_pairs(tok, ctx):
    """Each token is scored from the one before it (the first from the BOS): a shift by one would change
    the sum. A bigram model is blind to where the windows fall, so every context gives the same total."""
    g = torch.Generator().manual_seed(0)
    table = torch.randn(tok.vocab_size, tok.vocab_size, generator=g) * 3
    ids = doc_ids(tok, TEXT)
    logp = table.log_softmax(-1)
    nats = -sum(logp[a, b].item() for a, b in zip(ids[:-1], ids[1:], strict=True))
    got = bits_per_byte(Bigram(table, ctx), tok, [TEXT])
    assert got == pytest.approx(nats / math.log(2) / len(TEXT.encode("utf-8")), rel=1e-5)


class Oracle(Uniform):
    """Knows the document: finds where the window sits in it and puts all its mass on each next token,
    except at the positions in `halves`, where the right token gets probability 1/2 (one bit)."""

    def __init__(self, ids: list[int], vocab_size: int, seq_len: int, halves: frozenset[int] = frozenset()):
        super().__init__(vocab_size, seq_len)
        self.ids, self.halves = ids, halves

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        super().forward(x)
        T, V = x.shape[1], self.cfg.vocab_size
        lo = next(i for i in range(len(self.ids)) if self.ids[i: i + T] == x[0].tolist())
        out = torch.full((1, T, V), -1e4)
        for j in range(T):
            target = lo + j + 1
            if target in self.halves:
                out[0, j] = 0.0
                out[0, j, self.ids[target]] = math.log(V - 1)
            else:
                out[0, j, self.ids[target]] = 0.0
        return out


@pytest.mark.parametrize("ctx", [512, 5])
def test_a_model_sure_of_each_next_token_scores_zero_bits(tok, ctx):
    ids = doc_ids(tok, TEXT)
    nbytes = len(TEXT.encode("utf-8"))
    assert bits_per_byte(Oracle(ids, tok.vocab_size, ctx), tok, [TEXT]) == 0.0
    halves = frozenset({1, 5, len(ids) - 1})  # the first token, one inside, and the last: three bits
    got = bits_per_byte(Oracle(ids, tok.vocab_size, ctx, halves), tok, [TEXT])
    assert got == pytest.approx(3 / nbytes, rel=1e-5)


def test_a_document_longer_than_the_context_is_the_sum_of_its_windows(tok, tiny_model, world):
    text = " ".join(d["text"] for d in world.heldout_documents[:3])
    ids = doc_ids(tok, text)
    ctx = tiny_model.cfg.seq_len
    n = len(ids) - 1
    assert n > 3 * ctx
    nats, scored = 0.0, []
    with torch.inference_mode():
        for k in range(math.ceil(n / ctx)):
            targets = list(range(k * ctx + 1, min((k + 1) * ctx, n) + 1))  # positions of the tokens scored
            scored += targets
            x = torch.tensor([ids[t - 1] for t in targets])[None]
            y = torch.tensor([ids[t] for t in targets])
            nats += F.cross_entropy(tiny_model(x)[0].float(), y, reduction="sum").item()
    assert scored == list(range(1, n + 1))
    got = bits_per_byte(tiny_model, tok, [text])
    assert got == pytest.approx(nats / math.log(2) / len(text.encode("utf-8")), rel=1e-5)
