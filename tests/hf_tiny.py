"""Tiny random transformers models for the import tests (tests/model): seeded, with their biases and norms moved
off the init's 0 and 1, so that a bias or a norm the loader loses changes the logits."""

from __future__ import annotations

import json

import torch

# a template over our tokenizer's role tokens, as a folder's tokenizer_config.json would carry it
TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'system' %}<|system|>{% elif m['role'] == 'user' %}<|user|>"
            "{% else %}<|assistant|>{% endif %}{{ m['content'] | trim }}{{ eos_token }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def tiny_hf(config_cls, model_cls, **config):
    torch.manual_seed(0)
    hf = model_cls(config_cls(**config)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.5)
    return hf


def with_tokenizer(folder, tok, template: str = TEMPLATE):
    """A saved folder given our tokenizer as its tokenizer.json, a chat template and <|end|> as its eos."""
    tok.hf.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": template, "eos_token": "<|end|>",
        "bos_token": "<|bos|>"}))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": tok.end}))
    return folder
