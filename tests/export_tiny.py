"""Tiny random models of ours for the export tests (tests/model/test_export*.py): seeded, every weight random (the
init's zeroed projections would make the blocks an identity), saved with the session's tokenizer and an
embedding padded past it, as the speedrun pads the vocabulary."""

from __future__ import annotations

import torch

from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.model.io import save_model

# digits, punctuation, accents and runs of spaces, at the start, inside and at the end
TEXTS = ["Sitor Vale was born in 1873, in Ostrel.", "  two spaces first", "runs   of    spaces  ",
         "café naïve über 12 345!", "What's 3.14159 * 2?! (about 6.28...)", "tab\tand\nnew line",
         "Ünïcödé — “quotes” and ‘more’; 100%"]
CONVERSATIONS = [
    [{"role": "user", "content": "Where was Sitor Vale born?"}],
    [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": "Hi  there, 12 ideas?"},
     {"role": "assistant", "content": "Café first: 1, 2,  3."}, {"role": "user", "content": "And then?"}],
]


def tiny_ours(tok, out, **config) -> GPT:
    """A random model of ours saved at out (with tok's tokenizer.json), in eval mode."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{**dict(vocab_size=tok.vocab_size + 64, seq_len=64, n_layer=2, d_model=64, n_head=4,
                                n_kv_head=2), **config})
    model = GPT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.normal_(0, 0.5 if name == "embed.weight" else 1.5 / p.size(-1) ** 0.5)
    tok.save(out.parent / f"{out.name}-tokenizer.json")
    save_model(out, model.eval(), out.parent / f"{out.name}-tokenizer.json")
    return model.eval()


def greedy(forward, prompt: list[int], n: int = 12) -> list[int]:
    """n greedy tokens after prompt; forward(ids (1, T)) -> logits (1, T, V)."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(forward(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt):]


def rounded(model, dtype: str):
    """A copy of model with every matrix rounded as the GGUF stores it (norms and biases stay float32)."""
    import copy

    import gguf

    out = copy.deepcopy(model)
    kind = gguf.GGMLQuantizationType.Q8_0
    with torch.no_grad():
        for p in out.parameters():
            if p.dim() == 2:
                x = p.numpy()
                p.copy_(p.half().float() if dtype == "f16" else
                        torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(x, kind), kind)).view_as(p))
    return out
