"""The model: one decoder-only GPT (colossus.model.gpt) for our checkpoints and for the open-weight families
it expresses.

    from colossus.model import load_model
    model = load_model("runs/latest/model")        # ours: model.safetensors + config.json
    model = load_model("path/to/hf-folder")        # transformers': config.json + *.safetensors
    logits = model(ids)                            # ids (batch, time) -> logits (batch, time, vocab)
"""

from __future__ import annotations

from pathlib import Path

import torch

from colossus.model.gpt import GPT


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None) -> GPT:
    """Our model directory (or a run holding one in model/), or a Hugging Face folder; dtype applies to the
    latter (default: the checkpoint's own)."""
    from colossus.model import hf, io

    if hf.is_hf_folder(path):
        return hf.load_hf(path, device, dtype)
    return io.load_model(path, device)


__all__ = ["GPT", "load_model"]
