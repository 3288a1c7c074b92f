"""Hugging Face checkpoints in: a folder with config.json and *.safetensors (one file, or shards listed in
model.safetensors.index.json) becomes our GPT, for the decoder-only families whose blocks it expresses.

    model = load_hf("path/to/Qwen3-0.6B")            # or colossus.model.load_model, which also takes ours

Families: llama, mistral (with its sliding window), mixtral (Mixture-of-Experts), qwen2 (biases on q, k, v),
qwen3 (per-head QK-norm, head_dim set apart), and the two whose MLP is ours: arcee (llama with a relu2 MLP, no
gate) and apertus (arcee with qwen3's per-head QK-norm; its norms are named attention_layernorm and
feedforward_layernorm); with RoPE plain or scaled (linear, dynamic, llama3, yarn: colossus.model.rope). Weights
keep the checkpoint's dtype (float32, bfloat16 or float16) unless one is asked for. Every field of config.json
is either mapped onto ModelConfig, checked to hold the value our blocks compute, or known to change nothing at
inference (ids, provenance, training-only knobs); anything else is refused with one line that names it, so that
no supported field is dropped silently.

Names: q_proj -> attn.q; k_proj and v_proj -> attn.kv (keys, then values); o_proj -> attn.proj; gate_proj
and up_proj -> mlp.up (gate, then up: MLP.forward chunks it so); down_proj -> mlp.down; Mixtral's
block_sparse_moe.gate -> mlp.router, experts.{e}.w1 and w3 -> mlp.up[e] (gate, then up), w2 -> mlp.down[e].
RoPE: transformers rotates the two halves of each head (rotate_half), as apply_rope does, so q and k are copied
as they are."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from colossus.errors import ColossusError
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.model.io import fused_state, model_from_state
from colossus.model.rope import check_scaling

FAMILIES = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "arcee", "apertus")
RELU2 = ("arcee", "apertus")  # families whose MLP is up -> relu(x)^2 -> down, as ours with mlp = "relu2"
QK_NORM = ("qwen3", "apertus")
IGNORED = {
    # ids, provenance and bookkeeping: no effect on the logits
    "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "bos_token_id",
    "eos_token_id", "pad_token_id", "_name_or_path", "use_cache", "initializer_range", "return_dict",
    "output_hidden_states", "output_attentions", "torchscript", "is_decoder", "id2label", "label2id",
    "problem_type", "tokenizer_class", "prefix", "task_specific_params", "chunk_size_feed_forward",
    "tie_encoder_decoder", "is_encoder_decoder", "cross_attention_hidden_size", "add_cross_attention",
    "finetuning_task", "_attn_implementation_autoset", "keys_to_ignore_at_inference",
    "base_model_tp_plan", "base_model_pp_plan", "sep_token_id",
    "decoder_start_token_id", "attention_dropout", "is_llama_config", "transformers.js_config",
    "output_router_logits", "router_aux_loss_coef", "router_jitter_noise",  # training the router only
}
# fields whose value must be this one (or absent) for our blocks to compute what transformers does
REQUIRED = {"hidden_act": "silu", "pretraining_tp": 1, "mlp_bias": False, "rope_interleaved": False}
MAPPED = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
          "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings",
          "head_dim", "attention_bias", "rope_parameters", "rope_scaling", "sliding_window", "use_sliding_window",
          "layer_types", "max_window_layers", "num_local_experts", "num_experts_per_tok"}
NAMES = {"embed": "model.embed_tokens.weight", "norm": "model.norm.weight", "head": "lm_head.weight",
         **{part: f"model.layers.{{i}}.{name}.weight" for part, name in (
             ("attn_norm", "input_layernorm"), ("mlp_norm", "post_attention_layernorm"), ("q", "self_attn.q_proj"),
             ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"), ("o", "self_attn.o_proj"),
             ("q_norm", "self_attn.q_norm"), ("k_norm", "self_attn.k_norm"), ("gate", "mlp.gate_proj"),
             ("up", "mlp.up_proj"), ("down", "mlp.down_proj"), ("router", "block_sparse_moe.gate"),
             ("expert_gate", "block_sparse_moe.experts.{e}.w1"), ("expert_up", "block_sparse_moe.experts.{e}.w3"),
             ("expert_down", "block_sparse_moe.experts.{e}.w2"))}}
APERTUS_NAMES = {**NAMES, "attn_norm": "model.layers.{i}.attention_layernorm.weight",
                 "mlp_norm": "model.layers.{i}.feedforward_layernorm.weight"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def is_hf_folder(path: str | Path) -> bool:
    """A folder whose config.json is transformers' (it names a model_type; ours never does)."""
    f = Path(path) / "config.json"
    try:
        return f.is_file() and "model_type" in json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def rope_of(hf: dict) -> tuple[float, dict | None]:
    """RoPE's base and scaling (colossus.model.rope) from rope_parameters (transformers 5) or rope_scaling and
    rope_theta (transformers 4), filled in as transformers fills them: the length trained on defaults to
    max_position_embeddings, which "dynamic" scaling always takes, and a yarn factor of None is the ratio."""
    old = dict(hf.get("rope_scaling") or {})
    if "type" in old:  # the older name of rope_type
        old.setdefault("rope_type", old.pop("type"))
    params = {**(hf.get("rope_parameters") or {}), **old}
    params.pop("type", None)
    kind = params.pop("rope_type", "default")
    theta = float(params.pop("rope_theta", hf.get("rope_theta", 10000.0)))
    if params.pop("partial_rotary_factor", 1.0) != 1.0:
        raise ColossusError("config.json: partial_rotary_factor other than 1 is not supported")
    if kind == "default":
        if params:
            raise ColossusError(f"config.json: rope parameter {sorted(params)[0]!r} is not supported")
        return theta, None
    longest = hf.get("max_position_embeddings", 2048)
    if kind == "dynamic":
        params["original_max_position_embeddings"] = longest
    elif kind in ("llama3", "yarn"):
        params.setdefault("original_max_position_embeddings", longest)
    if kind == "yarn" and params.get("factor") is None:
        params["factor"] = longest / params["original_max_position_embeddings"]
    scaling = {"rope_type": kind, **params}
    check_scaling(scaling)
    return theta, scaling


def window_of(hf: dict, family: str) -> int:
    """The sliding window every layer attends within (0: none). Mistral uses sliding_window when it is set; Qwen2
    and Qwen3 write one they use only with use_sliding_window, from layer max_window_layers on (transformers 5
    spells this out as layer_types). One window for all layers or none: a mix is refused."""
    window = hf.get("sliding_window") or 0
    if family == "llama" and window:  # (mixtral shares mistral's)
        raise ColossusError("config.json: sliding_window is not a llama field (mistral's)")
    if family in ("qwen2", "qwen3"):
        n = hf["num_hidden_layers"]
        default = ["sliding_attention" if hf.get("use_sliding_window") and i >= hf.get("max_window_layers", n)
                   else "full_attention" for i in range(n)]
    else:
        default = ["sliding_attention" if window else "full_attention"] * hf["num_hidden_layers"]
    kinds = set(hf.get("layer_types") or default)
    unknown = sorted(kinds - {"full_attention", "sliding_attention"})
    if unknown:
        raise ColossusError(f"config.json: layer_types {unknown[0]!r} is not supported")
    if len(kinds) > 1:
        raise ColossusError("config.json: layer_types mixes full and sliding-window attention, which is not "
                            "supported (one window for every layer, or none)")
    if kinds == {"sliding_attention"}:
        if not window:
            raise ColossusError("config.json: sliding_attention layers with no sliding_window")
        return int(window)
    return 0


def config_from_hf(hf: dict) -> ModelConfig:
    """ModelConfig for a transformers config.json, or a ColossusError naming the first thing it cannot hold."""
    family = hf.get("model_type")
    if family not in FAMILIES:
        raise ColossusError(f"config.json: model_type {family!r} is not supported (supported: {', '.join(FAMILIES)})")
    required = {**REQUIRED, "hidden_act": "relu2" if family in RELU2 else "silu"}
    for key, want in required.items():
        if hf.get(key, want) != want:
            raise ColossusError(f"config.json: {key} = {hf[key]!r} is not supported (only {want!r})")
    unknown = sorted(k for k in hf if k not in IGNORED and k not in REQUIRED and k not in MAPPED)
    if unknown:
        raise ColossusError(f"config.json: field {unknown[0]!r} is not supported")
    d, n_head = hf["hidden_size"], hf["num_attention_heads"]
    theta, scaling = rope_of(hf)
    head_dim = hf.get("head_dim") or d // n_head
    bias = family == "qwen2" or bool(hf.get("attention_bias", False))
    if bias and family != "qwen2":  # llama's attention_bias puts one on o_proj too, which our blocks lack
        raise ColossusError("config.json: attention_bias = true is not supported for this family (only qwen2's)")
    longest = hf.get("max_position_embeddings", 2048)
    if scaling and scaling["rope_type"] == "dynamic":  # the length it was trained on, which the scaling stretches
        longest = int(longest * scaling["factor"])
    return ModelConfig(
        vocab_size=hf["vocab_size"], seq_len=longest,
        n_layer=hf["num_hidden_layers"], d_model=d, n_head=n_head,
        n_kv_head=hf.get("num_key_value_heads") or n_head, mlp="relu2" if family in RELU2 else "swiglu",
        mlp_width=hf["intermediate_size"],
        head_size=head_dim if head_dim != d // n_head or d % n_head else 0,
        rope_theta=theta, rope_scaling=scaling, sliding_window=window_of(hf, family), qk_norm=family in QK_NORM,
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        qkv_bias=bias, tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        n_experts=hf.get("num_local_experts", 0) if family == "mixtral" else 0,
        experts_per_token=hf.get("num_experts_per_tok", 2))


def read_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the folder's checkpoint: model.safetensors, or the shards its index names."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError) as e:
            raise ColossusError(f"{index} is not a safetensors index (no weight_map): {e}") from e
    else:
        files = [p.name for p in sorted(folder.glob("*.safetensors"))]
    if not files:
        raise ColossusError(f"no *.safetensors in {folder} (a .bin checkpoint is pickle: convert it to safetensors)")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        try:
            state.update(load_file(str(folder / name)))
        except (SafetensorError, OSError) as e:
            raise ColossusError(f"{folder / name} is missing, corrupt or unreadable: {e}") from e
    return state


def names_of(family: str) -> dict[str, str]:
    """The family's tensor names (fused_state's table)."""
    return APERTUS_NAMES if family == "apertus" else NAMES


def state_from_hf(hf_state: dict[str, torch.Tensor], cfg: ModelConfig,
                  family: str = "llama") -> dict[str, torch.Tensor]:
    """transformers' tensor names -> ours (q, k, v and gate, up fused); a missing tensor is an error, and so is
    one left over."""
    src = dict(hf_state)

    def take(name: str) -> torch.Tensor:
        try:
            return src.pop(name)
        except KeyError:
            raise ColossusError(f"the checkpoint has no tensor {name}") from None

    if cfg.tie_embeddings:
        src.pop("lm_head.weight", None)  # some tied checkpoints write the head out as well
    out = fused_state(cfg, take, names_of(family))
    src = {k: v for k, v in src.items() if not k.endswith("rotary_emb.inv_freq")}  # a cache, not a weight
    if src:
        raise ColossusError(f"the checkpoint has a tensor this model does not use: {sorted(src)[0]}")
    return out


def load_hf(path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None) -> GPT:
    """Our GPT with a Hugging Face folder's weights, in their own dtype unless `dtype` names one."""
    folder = Path(path)
    try:
        hf = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ColossusError(f"{folder / 'config.json'} is missing or not JSON: {e}") from e
    cfg = config_from_hf(hf)
    state = state_from_hf(read_safetensors(folder), cfg, hf["model_type"])
    if dtype is not None and dtype not in DTYPES:
        raise ColossusError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    want = DTYPES[dtype] if dtype else state["embed.weight"].dtype
    if want not in DTYPES.values():
        raise ColossusError(f"weights of dtype {want} are not supported (float32, bfloat16, float16)")
    return model_from_state(cfg, state, want, device, folder)
