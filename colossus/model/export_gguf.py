"""Our model out as a GGUF file for llama.cpp (and Ollama), written with the `gguf` package's GGUFWriter:
llama.cpp's own converter rejects a byte-level BPE pre-tokenizer it does not know, so we write the file ourselves.

    colossus export --model runs/latest/model --format gguf --out model.gguf --dtype q8_0

Architectures (gguf_file.py reads the same ones back with the same names table): llama (swiglu, no QK-norm), qwen2
(swiglu with biases on q, k, v) and qwen3 (swiglu with per-head QK-norm). A relu2 MLP is refused: llama.cpp's
llama, qwen2 and qwen3 graphs compute SiLU-gated MLPs, and the presets (relu2 with QK-norm) have no llama.cpp
architecture; export them as a Hugging Face folder (apertus). llama's q and k rows are permuted for llama.cpp's
interleaved RoPE (gguf_file.permute); qwen2 and qwen3 use the halves order (NEOX), as ours, and are not.

Tensors: norms and biases in F32; matrices in F32, F16 or Q8_0 (gguf.quants), a matrix whose rows are not a whole
number of Q8_0 blocks (32) in F16, as llama.cpp's converter does.

Tokenizer: tokenizer.ggml.model "gpt2" (byte-level BPE: our vocabulary, merges, and our special tokens as control
tokens; rows of the embedding past the tokenizer's, padding, as unused [PADn] tokens), tokenizer.ggml.pre "gpt-2":
llama.cpp's name for GPT-2's split regex ('s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S),
llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_GPT2), which is what `tokenizers`' ByteLevel(use_regex=True) splits by.
("gpt2" is the model, not a pre-tokenizer: llama.cpp refuses it as one, and "default" splits digits otherwise.)
llama.cpp's BPE never adds a space in front (tokenizer.ggml.add_space_prefix is read for SentencePiece
vocabularies only), so the chat template writes our leading space before each message, and text tokenized
directly needs " " + text to give our ids. No BOS is added (the template writes it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError
from colossus.model.config import ModelConfig
from colossus.model.export_hf import chat_templates, check_exportable, load_ours
from colossus.model.gguf_file import CONTROL, NAMES, PERMUTED, _gguf, permute
from colossus.model.io import split_state

DTYPES = ("f32", "f16", "q8_0")
NORMAL, UNUSED = 1, 5  # tokenizer.ggml.token_type values


def gguf_architecture(cfg: ModelConfig) -> str:
    """The llama.cpp architecture whose graph computes ours, or a ColossusError naming the field none has."""
    check_exportable(cfg, gguf=True)
    if cfg.n_experts and (cfg.qk_norm or cfg.qkv_bias):
        raise ColossusError("n_experts goes with qk_norm = false and qkv_bias = false (llama's experts, Mixtral's) "
                            "only")
    if cfg.mlp != "swiglu":
        raise ColossusError(f"mlp = {cfg.mlp!r} has no llama.cpp architecture (its llama, qwen2 and qwen3 graphs "
                            "compute SiLU-gated MLPs): export it with --format hf, or train with "
                            "--set model.mlp=swiglu")
    if cfg.qkv_bias and cfg.qk_norm:
        raise ColossusError("qkv_bias = true with qk_norm = true has no llama.cpp architecture (qwen2 has the "
                            "biases, qwen3 the QK-norm)")
    return "qwen3" if cfg.qk_norm else "qwen2" if cfg.qkv_bias else "llama"


def pre_tokenizer_name(tok) -> str:
    """llama.cpp's name for the tokenizer's split: GPT-2's regex ("gpt-2", ours), or digits apart first and then
    GPT-2's ("smollm", SmolLM2's); another is refused (llama.cpp would split it otherwise)."""
    pre = json.loads(tok.hf.to_str()).get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [(p.get("type"), p.get("individual_digits"), p.get("use_regex")) for p in steps]
    if kinds == [("ByteLevel", None, True)]:
        return "gpt-2"
    if kinds == [("Digits", True, None), ("ByteLevel", None, True)]:
        return "smollm"
    raise ColossusError(f"the tokenizer's pre-tokenizer {kinds} has no llama.cpp name this exporter knows "
                        "(GPT-2's split, or digits apart then GPT-2's)")


def vocabulary(tok: Tokenizer, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges "a b") of our tokenizer, padded to the model's vocab_size with unused tokens."""
    n = tok.vocab_size
    if n > vocab_size:
        raise ColossusError(f"the tokenizer has {n} tokens, more than the model's vocab_size {vocab_size}")
    tokens = [tok.hf.id_to_token(i) for i in range(n)]
    if any(t is None for t in tokens):
        raise ColossusError("the tokenizer's ids are not contiguous: it cannot be written as a GGUF token list")
    types = [CONTROL if i in tok.special_ids else NORMAL for i in range(n)]
    tokens += [f"[PAD{i}]" for i in range(n, vocab_size)]
    types += [UNUSED] * (vocab_size - n)
    bpe = json.loads(tok.hf.to_str())["model"]
    if bpe.get("ignore_merges"):
        raise ColossusError("the tokenizer keeps whole words that no merge builds (data.whole_word_min), which "
                            "llama.cpp's BPE would split: train with --set data.whole_word_min=0 to export to GGUF")
    merges = bpe["merges"]
    return tokens, types, [m if isinstance(m, str) else " ".join(m) for m in merges]


def add_tensor(writer, name: str, w: torch.Tensor, dtype: str) -> None:
    gguf = _gguf()
    x = w.detach().float().cpu().numpy()
    if x.ndim == 1 or dtype == "f32":
        writer.add_tensor(name, np.ascontiguousarray(x, dtype=np.float32))
    elif dtype == "f16" or x.shape[-1] % 32:
        writer.add_tensor(name, x.astype(np.float16))
    else:
        kind = gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(name, gguf.quants.quantize(x, kind), raw_dtype=kind)


def export_gguf(model_dir: str | Path, out: str | Path, dtype: str = "f32") -> Path:
    """Write our model directory as a GGUF file at `out` with matrices in dtype (f32, f16, q8_0); returns it."""
    gguf = _gguf()
    if dtype not in DTYPES:
        raise ColossusError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    model, tok, d = load_ours(model_dir)
    cfg = model.cfg
    arch = gguf_architecture(cfg)
    out = Path(out)
    if out.is_dir():
        raise ColossusError(f"--out {out} is a folder: a GGUF model is one file (e.g. {out / 'model.gguf'})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tokens, types, merges = vocabulary(tok, cfg.vocab_size)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]
    tmp = out.with_name(out.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), arch)
    w.add_name(d.stem if d.suffix == ".gguf" else d.parent.name if d.name == "model" else d.name)
    w.add_file_type(file_type)
    w.add_block_count(cfg.n_layer)
    w.add_context_length(cfg.seq_len)
    w.add_embedding_length(cfg.d_model)
    w.add_feed_forward_length(cfg.mlp_hidden)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_kv_head)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(cfg.rope_theta)
    scaling = cfg.rope_scaling or {}
    if scaling.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(scaling["factor"])
    if cfg.n_experts:
        w.add_expert_count(cfg.n_experts)
        w.add_expert_used_count(cfg.experts_per_token)
    w.add_layer_norm_rms_eps(cfg.norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre_tokenizer_name(tok))
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.bos)
    w.add_eos_token_id(tok.end)
    w.add_pad_token_id(tok.pad)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    templates = chat_templates(tok, space=True)
    if isinstance(templates, list):  # llama.cpp's names: tokenizer.chat_template and tokenizer.chat_template.NAME
        w.add_chat_template(templates[0]["template"])
        w.add_string("tokenizer.chat_template.tool_use", templates[1]["template"])
    else:
        w.add_chat_template(templates)
    tensors = split_state(cfg, model.state_dict(), NAMES, permute if arch in PERMUTED else None)
    if scaling.get("rope_type") == "factors":  # llama.cpp's own form of llama3 scaling
        tensors["rope_freqs.weight"] = torch.tensor(scaling["factors"], dtype=torch.float32)
    for name, t in tensors.items():
        add_tensor(w, name, t, dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(out)
    return out
