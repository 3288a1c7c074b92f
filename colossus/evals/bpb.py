"""Bits per byte on held-out documents: a tokenizer-independent measure of how well the model
predicts text it has never seen (lower is better)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from colossus.data.tokenizer import Tokenizer
from colossus.model.gpt import GPT


@torch.inference_mode()
def bits_per_byte(model: GPT, tok: Tokenizer, texts: list[str], device: str | torch.device = "cpu") -> float:
    """Sum of the cross-entropy of every token of the documents (in bits) over their UTF-8 bytes. Each
    document is scored after a BOS; one longer than the context is scored window by window, every token
    once. The bytes are the document's own: not the BOS, nor the space the tokenizer puts in front of
    every text (a tokenizer without it would otherwise see one byte fewer per document). An empty
    document has nothing to predict and is skipped."""
    ctx = model.cfg.seq_len
    nats, nbytes = 0.0, 0
    texts = [t for t in texts if t]
    for text, ids in zip(texts, tok.encode_batch(texts), strict=True):
        ids = [tok.bos] + ids
        nbytes += len(text.encode("utf-8"))
        for lo in range(0, len(ids) - 1, ctx):
            chunk = torch.tensor(ids[lo: lo + ctx + 1], device=device)
            logits = model(chunk[None, :-1])[0]
            nats += F.cross_entropy(logits.float(), chunk[1:], reduction="sum").item()
    return nats / math.log(2) / max(nbytes, 1)
