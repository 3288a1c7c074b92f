"""Tiny random transformers models for the import tests (tests/model): seeded, with their biases and norms moved
off the init's 0 and 1, so that a bias or a norm the loader loses changes the logits."""

from __future__ import annotations

import torch


def tiny_hf(config_cls, model_cls, **config):
    torch.manual_seed(0)
    hf = model_cls(config_cls(**config)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.5)
    return hf
