"""Fixtures of the inference tests."""

from __future__ import annotations

import pytest
import torch

from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT


@pytest.fixture(scope="module")
def small() -> GPT:
    """A 2-layer model with grouped-query attention, a context of 160 and spread-out logits (its greedy
    choices are clear, so rounding differences between two ways of computing them change no token)."""
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=97, seq_len=160, n_layer=2, d_model=32, n_head=4, n_kv_head=2))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m.eval()
