"""The model: one decoder-only GPT (colossus.model.gpt) for our checkpoints and for the open-weight families
it expresses.

    from colossus.model import load_model
    model = load_model("runs/latest/model")        # ours: model.safetensors + config.json
    model = load_model("path/to/hf-folder")        # transformers': config.json + *.safetensors
    model = load_model("path/to/model.gguf")       # llama.cpp's, dequantized
    logits = model(ids)                            # ids (batch, time) -> logits (batch, time, vocab)
"""

from __future__ import annotations

from pathlib import Path

import torch

from colossus.model.gpt import GPT


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None) -> GPT:
    """Our model directory (or a run holding one in model/), a Hugging Face folder or a GGUF file; dtype applies
    to the latter two (default: a folder's own, a GGUF file's float32)."""
    from colossus.model import gguf_file, hf, io

    if str(path).endswith(".gguf"):
        return gguf_file.load_gguf(path, device, dtype)
    if hf.is_hf_folder(path):
        return hf.load_hf(path, device, dtype)
    return io.load_model(path, device)


def resolve_model(path: str | Path) -> tuple[Path, list[Path]]:
    """(what load_model takes, the files that hold its config and weights) for a GGUF file, a Hugging Face folder,
    or our model directory (or a run holding one); a ColossusError saying what is expected otherwise."""
    from colossus.errors import ColossusError
    from colossus.model import hf, io

    p = Path(path)
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ColossusError(f"no model at {p}: the file does not exist")
        return p, [p]
    if hf.is_hf_folder(p):
        return p, [p / "config.json", *sorted(p.glob("*.safetensors"))]
    d = io.resolve_model_dir(p)
    return d, [d / io.CONFIG, d / io.WEIGHTS]


def load_tokenizer(path: str | Path):
    """The tokenizer (with its chat template) of what load_model takes, or a tokenizer.json of ours: a GGUF file's
    or a Hugging Face folder's own (colossus.data.template_tokenizer); in our model directory, ours, or the
    imported one a model fine-tuned from an import keeps beside it (tokenizer_config.json)."""
    from colossus.data.template_tokenizer import TemplateTokenizer
    from colossus.data.tokenizer import Tokenizer
    from colossus.model import hf, io

    p = Path(path)
    if p.suffix == ".gguf":
        return TemplateTokenizer.from_gguf(p)
    if p.is_file():
        return Tokenizer.load(p)
    if hf.is_hf_folder(p):
        return TemplateTokenizer.from_hf_folder(p)
    d = p if (p / io.TOKENIZER).exists() else io.resolve_model_dir(p)
    if (d / "tokenizer_config.json").exists():
        return TemplateTokenizer.from_hf_folder(d)
    return Tokenizer.load(d / io.TOKENIZER)


def load_chat_model(path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None):
    """(model, tokenizer) of what load_model takes: ours with our Tokenizer and template; a Hugging Face folder or
    a GGUF file with its own tokenizer and chat template (colossus.data.template_tokenizer), which
    chat_template.render_prompt uses for it. The rest of the code sees one tokenizer interface."""
    return load_model(path, device, dtype), load_tokenizer(path)


def is_imported(path: str | Path) -> bool:
    """A GGUF file or a Hugging Face folder (not one of our model directories)."""
    from colossus.model import hf

    return Path(path).suffix == ".gguf" or hf.is_hf_folder(path)


__all__ = ["GPT", "is_imported", "load_chat_model", "load_model", "load_tokenizer", "resolve_model"]
