"""Our model out as a Hugging Face folder: config.json, model.safetensors, generation_config.json, tokenizer.json
and tokenizer_config.json (with our chat template in Jinja), which transformers' AutoModelForCausalLM and
AutoTokenizer load as they are, and colossus.model.load_model / load_chat_model load back.

    colossus export --model runs/latest/model --format hf --out exported/
    colossus export --model SmolLM2-135M-Instruct.Q4_1.gguf --format hf --out smollm2/    # dequantized

An imported model (a GGUF file, a Hugging Face folder, or ours fine-tuned from one) goes out with its own
tokenizer and chat template, in float32.

The family is the one whose blocks compute ours (hf.py imports the same families with the same names table):

    mlp      qk_norm  qkv_bias   family
    swiglu   False    False      llama
    swiglu   False    True       qwen2
    swiglu   True     False      qwen3    (per-head RMSNorm on q and k before RoPE, eps = rms_norm_eps, as ours)
    relu2    False    False      arcee    (llama with an up -> relu(x)^2 -> down MLP)
    relu2    True     False      apertus  (arcee with qwen3's per-head QK-norm)

Anything else (biases with QK-norm or relu2) is refused with one line naming the field. The presets (tiny, cpu,
gpu) train relu2 with QK-norm: apertus.

The tokenizer is ours with two additions that make transformers encode and decode as our Tokenizer does: a
Prepend(" ") normalizer (our leading space; it runs on each text between special tokens, so the chat template
writes no space) and a Strip decoder that takes it off again. One difference: an empty message, which ours encodes
as the space alone, gets no token (Prepend leaves an empty text empty)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from colossus.data.chat_template import jinja_template
from colossus.data.template_tokenizer import TemplateTokenizer
from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError
from colossus.model import hf as hf_import
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.model.io import TOKENIZER, resolve_model_dir, split_state

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                 "mistral": "MistralForCausalLM", "mixtral": "MixtralForCausalLM",
                 "arcee": "ArceeForCausalLM", "apertus": "ApertusForCausalLM"}


def load_ours(path: str | Path) -> tuple[GPT, Tokenizer | TemplateTokenizer, Path]:
    """What to export, with its tokenizer: our model directory (or a run holding one in model/), or an imported
    model (a GGUF file, a Hugging Face folder, or ours fine-tuned from one) with its own tokenizer and template,
    dequantized to float32."""
    from colossus.model import is_imported, load_tokenizer
    from colossus.model import load_model as load_any

    p = Path(path)
    if not is_imported(p):
        p = resolve_model_dir(p)
        if not (p / TOKENIZER).exists():
            raise ColossusError(f"no {TOKENIZER} in {p}: an exported model needs the tokenizer it was trained with")
    return load_any(p, dtype="float32"), load_tokenizer(p), p


def check_exportable(cfg: ModelConfig, gguf: bool = False) -> None:
    """A ColossusError naming a field an exporter cannot write (it would drop it silently): for Hugging Face,
    llama.cpp's per-frequency RoPE factors; for GGUF, a sliding window (llama.cpp's llama graph attends to every
    position) and RoPE scalings other than linear and per-frequency factors; for both, a copy head."""
    kind = (cfg.rope_scaling or {}).get("rope_type")
    if cfg.copy_head:
        raise ColossusError("copy_head = true: neither transformers nor llama.cpp has a copy head (its bonus to the "
                            "token that followed the current one in the context), and dropping it changes every "
                            "answer that copies; train with --set model.copy_head=false to export")
    if not gguf and kind == "factors":
        raise ColossusError("rope_scaling 'factors' (llama.cpp's rope_freqs) has no transformers form: export it "
                            "with --format gguf")
    if gguf and cfg.sliding_window:
        raise ColossusError(f"sliding_window = {cfg.sliding_window}: llama.cpp's llama, qwen2 and qwen3 graphs attend "
                            "to every position; export it with --format hf (mistral)")
    if gguf and kind not in (None, "linear", "factors"):
        raise ColossusError(f"rope_scaling {kind!r}: the GGUF exporter writes linear scaling and per-frequency "
                            "factors only; export it with --format hf")


def hf_family(cfg: ModelConfig) -> str:
    """The transformers model_type whose blocks compute ours, or a ColossusError naming the field none has."""
    check_exportable(cfg)
    if cfg.n_experts or (cfg.sliding_window and cfg.mlp == "swiglu" and not cfg.qk_norm and not cfg.qkv_bias):
        if cfg.qk_norm or cfg.qkv_bias or cfg.mlp != "swiglu":
            raise ColossusError("n_experts goes with mlp = 'swiglu', qk_norm = false and qkv_bias = false (mixtral) "
                                "only")
        return "mixtral" if cfg.n_experts else "mistral"
    if cfg.sliding_window and cfg.mlp != "swiglu":
        raise ColossusError("sliding_window with mlp = 'relu2': no transformers family has both")
    if cfg.qkv_bias:
        if cfg.qk_norm or cfg.mlp != "swiglu":
            raise ColossusError("qkv_bias = true goes with mlp = 'swiglu' and qk_norm = false (qwen2) only: no "
                                "transformers family has biases on q, k, v with QK-norm or a relu2 MLP")
        return "qwen2"
    return {("swiglu", False): "llama", ("swiglu", True): "qwen3", ("relu2", False): "arcee",
            ("relu2", True): "apertus"}[(cfg.mlp, cfg.qk_norm)]


def rope_parameters(cfg: ModelConfig) -> tuple[dict, int]:
    """config.json's rope_parameters and max_position_embeddings (hf.rope_of's inverse: a dynamic scaling's
    context is the length trained on, which our seq_len stretches by its factor)."""
    scaling = dict(cfg.rope_scaling or {})
    kind = scaling.pop("rope_type", "default")
    longest = cfg.seq_len
    if kind == "dynamic":
        longest = scaling.pop("original_max_position_embeddings")
    return {"rope_type": kind, "rope_theta": cfg.rope_theta, **scaling}, longest


def hf_config(cfg: ModelConfig, family: str, tok: Tokenizer) -> dict:
    """config.json for the family: every field hf.config_from_hf maps back onto cfg."""
    rope, longest = rope_parameters(cfg)
    out = {"architectures": [ARCHITECTURES[family]], "model_type": family, "vocab_size": cfg.vocab_size,
           "hidden_size": cfg.d_model, "intermediate_size": cfg.mlp_hidden, "num_hidden_layers": cfg.n_layer,
           "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_kv_head, "head_dim": cfg.head_dim,
           "hidden_act": "relu2" if cfg.mlp == "relu2" else "silu", "max_position_embeddings": longest,
           "rms_norm_eps": cfg.norm_eps, "rope_parameters": rope,
           "tie_word_embeddings": cfg.tie_embeddings, "bos_token_id": tok.bos, "eos_token_id": tok.end,
           "pad_token_id": tok.pad, "dtype": "float32"}
    if family not in ("qwen2", "mistral", "mixtral"):  # qwen2 always has its q, k, v biases; the others'
        out["attention_bias"] = False                   # attention_bias also puts one on o_proj
    if family in ("mistral", "mixtral"):
        out["sliding_window"] = cfg.sliding_window or None
    elif cfg.sliding_window:  # qwen2, qwen3: every layer windowed
        out.update(use_sliding_window=True, sliding_window=cfg.sliding_window, max_window_layers=0)
    if family == "mixtral":
        out.update(num_local_experts=cfg.n_experts, num_experts_per_tok=cfg.experts_per_token)
    if family in ("llama", "arcee"):
        out["mlp_bias"] = False
    return out


def tokenizer_json(tok: Tokenizer | TemplateTokenizer) -> str:
    """Our tokenizer.json with the leading space in it: Prepend(" ") before, Strip(" ", 1, 0) after decoding. An
    imported model's tokenizer goes out as it came in."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, normalizers

    if isinstance(tok, TemplateTokenizer):
        return tok.hf.to_str(pretty=True)
    hf = HFTokenizer.from_str(tok.hf.to_str())
    hf.normalizer = normalizers.Prepend(" ")
    hf.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    return hf.to_str(pretty=True)


def chat_templates(tok: Tokenizer | TemplateTokenizer, space: bool) -> str | list[dict]:
    """Our template in Jinja (space: it writes our leading space itself), or an imported model's own (with its
    tool_use template beside it, as transformers names them)."""
    return tok.chat_templates() if isinstance(tok, TemplateTokenizer) else jinja_template(space=space)


def tokenizer_config(tok: Tokenizer | TemplateTokenizer, cfg: ModelConfig) -> dict:
    name = tok.hf.id_to_token
    return {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": name(tok.bos), "eos_token": name(tok.end),
            "pad_token": name(tok.pad), "add_bos_token": False, "add_eos_token": False,
            "clean_up_tokenization_spaces": False, "model_max_length": cfg.seq_len,
            "chat_template": chat_templates(tok, space=False)}


HF_DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def export_hf(model_dir: str | Path, out: str | Path, dtype: str = "f32") -> Path:
    """Write our model directory (or an imported model) as a Hugging Face folder at `out`, its weights in dtype
    (f32, bf16, f16); returns it."""
    if dtype not in HF_DTYPES:
        raise ColossusError(f"dtype must be one of {', '.join(HF_DTYPES)}, not {dtype!r}")
    model, tok, _ = load_ours(model_dir)
    cfg = model.cfg
    family = hf_family(cfg)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ColossusError(f"--out {out} is a file: a Hugging Face model is a folder")
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().to(HF_DTYPES[dtype]).contiguous()
             for k, v in split_state(cfg, model.state_dict(), hf_import.names_of(family)).items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = hf_config(cfg, family, tok) | {"dtype": str(HF_DTYPES[dtype]).removeprefix("torch.")}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    stops = sorted(tok.stop_ids) if isinstance(tok, TemplateTokenizer) else [tok.end]  # ours: <|end|> ends a turn
    generation = {"bos_token_id": tok.bos, "eos_token_id": stops[0] if len(stops) == 1 else stops,
                  "pad_token_id": tok.pad}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    (out / "tokenizer.json").write_text(tokenizer_json(tok))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(tok, cfg), indent=2) + "\n")
    return out
