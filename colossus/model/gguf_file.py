"""GGUF files in (llama.cpp, Ollama): the architecture and hyper-parameters from the metadata, the tensors
dequantized on load into our GPT, read with the `gguf` package.

    model = load_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")       # or colossus.model.load_model

Architectures: llama (Llama with its rope_freqs, SmolLM2, Mistral, Mixtral's experts stacked as llama.cpp
stores them), qwen2 and qwen3. Tensor types: F32, F16, BF16,
Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K (the `gguf` package's own dequantizers), into float32. llama.cpp's
converter stores a llama model's q and k rows permuted for its interleaved RoPE (each head's two halves
interleaved, convert_hf_to_gguf's `permute`); `unpermute` puts them back in the halves order our RoPE, like
transformers', rotates. qwen2 and qwen3 are stored unpermuted (their converter uses the halves order).

`tokenizer_from_gguf` rebuilds a byte-level BPE tokenizer (tokenizer.ggml.model "gpt2") from tokenizer.ggml.*
as a `tokenizers` tokenizer, with the pre-tokenizer tokenizer.ggml.pre names; `chat_template` is the file's
Jinja template. Not here yet: the check against llama.cpp's own ids, SentencePiece ("llama") vocabularies, and
wiring both into the chat and the server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from colossus.errors import ColossusError
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.model.hf import DTYPES
from colossus.model.io import fused_state, model_from_state

ARCHITECTURES = ("llama", "qwen2", "qwen3")
PERMUTED = ("llama",)  # architectures whose q and k rows llama.cpp's converter interleaves
NAMES = {"embed": "token_embd.weight", "norm": "output_norm.weight", "head": "output.weight",
         **{part: f"blk.{{i}}.{name}.weight" for part, name in (
             ("attn_norm", "attn_norm"), ("mlp_norm", "ffn_norm"), ("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"),
             ("o", "attn_output"), ("q_norm", "attn_q_norm"), ("k_norm", "attn_k_norm"), ("gate", "ffn_gate"),
             ("up", "ffn_up"), ("down", "ffn_down"), ("router", "ffn_gate_inp"), ("expert_gate", "ffn_gate_exps"),
             ("expert_up", "ffn_up_exps"), ("expert_down", "ffn_down_exps"))}}
TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K")


def _gguf():
    try:
        import gguf
    except ImportError as e:  # a base dependency: only a broken install lands here
        raise ColossusError("reading GGUF files needs the `gguf` package: pip install gguf") from e
    return gguf


def unpermute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's q/k permutation: (n_head * hd, d) rows from the interleaved order to the halves order."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's q/k permutation (for writing a llama GGUF): the halves order to the interleaved one."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


class GGUFFile:
    """A GGUF file's metadata and tensors, memory-mapped."""

    def __init__(self, path: str | Path):
        gguf = _gguf()
        self.path = Path(path)
        try:
            self.reader = gguf.GGUFReader(str(self.path))
        except (ValueError, OSError, KeyError) as e:
            raise ColossusError(f"{self.path} is not a readable GGUF file: {e}") from e
        self.tensors = {t.name: t for t in self.reader.tensors}

    def value(self, key: str, default=None):
        field = self.reader.fields.get(key)
        if field is None:
            if default is None:
                raise ColossusError(f"{self.path}: metadata {key} is missing")
            return default
        return field.contents()

    @property
    def architecture(self) -> str:
        return self.value("general.architecture")

    def tensor(self, name: str) -> torch.Tensor:
        """One tensor, dequantized to float32, in PyTorch's (rows, columns) order."""
        gguf = _gguf()
        t = self.tensors.get(name)
        if t is None:
            raise ColossusError(f"{self.path}: tensor {name} is missing")
        kind = t.tensor_type.name
        if kind not in TYPES:
            raise ColossusError(f"{self.path}: tensor {name} is of type {kind}, not supported "
                                f"(supported: {', '.join(TYPES)})")
        shape = tuple(int(n) for n in reversed(t.shape))  # GGUF lists the fastest-varying dimension first
        if kind == "F32":
            data = np.array(t.data, dtype=np.float32)  # a copy: the file's memory map is read-only
        elif kind == "F16":
            data = np.asarray(t.data, dtype=np.float16).astype(np.float32)
        else:  # BF16 and the block quantizations: the package's dequantizer
            data = gguf.quants.dequantize(t.data, t.tensor_type)
        return torch.from_numpy(np.ascontiguousarray(data.reshape(shape), dtype=np.float32))


# llama.cpp's pre-tokenizers (llama-vocab.cpp) as `tokenizers` ones; all split as GPT-2's regex does, and
# "smollm" first puts every digit apart (SmolLM2's tokenizer.json: Digits(individual) then ByteLevel). "gpt-2" is
# llama.cpp's name for GPT-2's regex, the one our exporter writes (export_gguf.py)
PRE_TOKENIZERS = ("gpt-2", "gpt2", "default", "smollm")
CONTROL = 3  # tokenizer.ggml.token_type of a special (control) token


def tokenizer_from_gguf(f: GGUFFile):
    """The file's byte-level BPE vocabulary as a `tokenizers.Tokenizer` (its control tokens as special ones)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    kind = f.value("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ColossusError(f"{f.path}: tokenizer.ggml.model {kind!r} is not supported yet "
                            "(only 'gpt2', byte-level BPE)")
    pre = f.value("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise ColossusError(f"{f.path}: tokenizer.ggml.pre {pre!r} is not supported (supported: "
                            f"{', '.join(PRE_TOKENIZERS)})")
    tokens = f.value("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in f.value("tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.pre_tokenizer = byte_level if pre != "smollm" else pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level])
    tok.decoder = decoders.ByteLevel()
    kinds = f.value("tokenizer.ggml.token_type", [1] * len(tokens))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, k in zip(tokens, kinds, strict=True) if k == CONTROL])
    return tok


def chat_template(f: GGUFFile, name: str | None = None) -> str | None:
    """The file's Jinja chat template (tokenizer.chat_template), or a named one (tokenizer.chat_template.NAME, as
    llama.cpp writes the "tool_use" template of a model that has one), or None."""
    field = f.reader.fields.get("tokenizer.chat_template" + (f".{name}" if name else ""))
    return field.contents() if field is not None else None


def config_from_gguf(f: GGUFFile) -> ModelConfig:
    arch = f.architecture
    if arch not in ARCHITECTURES:
        raise ColossusError(f"{f.path}: architecture {arch!r} is not supported (supported: {', '.join(ARCHITECTURES)})")

    def key(name: str, default=None):
        return f.value(f"{arch}.{name}", default)

    kind, factor = key("rope.scaling.type", "none"), float(key("rope.scaling.factor", 1.0))
    if kind not in ("none", "linear"):  # llama.cpp's yarn is its own formula: not taken for transformers'
        raise ColossusError(f"{f.path}: {arch}.rope.scaling.type {kind!r} is not supported yet (none, linear)")
    scaling = {"rope_type": "linear", "factor": factor} if kind == "linear" and factor != 1.0 else None
    if "rope_freqs.weight" in f.tensors:  # llama3 scaling, as the converter writes it: a factor per frequency
        if scaling is not None:
            raise ColossusError(f"{f.path}: both rope_freqs.weight and {arch}.rope.scaling.type 'linear'")
        scaling = {"rope_type": "factors", "factors": [float(x) for x in f.tensor("rope_freqs.weight").reshape(-1)]}
    experts = int(f.value(f"{arch}.expert_count", 0))
    if experts and "blk.0.ffn_gate_exps.weight" not in f.tensors:
        raise ColossusError(f"{f.path}: experts stored one tensor each (an old layout) are not supported; "
                            "convert the model again with a current llama.cpp")
    d, n_head = int(key("embedding_length")), int(key("attention.head_count"))
    head_dim = int(key("attention.key_length", d // n_head))
    vocab = int(f.value(f"{arch}.vocab_size", 0)) or len(f.value("tokenizer.ggml.tokens"))
    return ModelConfig(
        vocab_size=vocab, seq_len=int(key("context_length", 2048)), n_layer=int(key("block_count")), d_model=d,
        n_head=n_head, n_kv_head=int(key("attention.head_count_kv", n_head)), mlp="swiglu",
        mlp_width=int(key("feed_forward_length")), head_size=head_dim if head_dim != d // n_head else 0,
        rope_theta=float(key("rope.freq_base", 10000.0)), rope_scaling=scaling, qk_norm=arch == "qwen3",
        norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-6)), qkv_bias=arch == "qwen2",
        tie_embeddings="output.weight" not in f.tensors, n_experts=experts,
        experts_per_token=int(key("expert_used_count", 2)))


def state_from_gguf(f: GGUFFile, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """llama.cpp's tensor names -> ours; a tensor left over is an error (it would be dropped silently)."""
    used = {"rope_freqs.weight"}  # read into the config's RoPE scaling

    def take(name: str) -> torch.Tensor:
        used.add(name)
        return f.tensor(name)

    out = fused_state(cfg, take, NAMES, unpermute if f.architecture in PERMUTED else None)
    left = sorted(set(f.tensors) - used)
    if left:
        raise ColossusError(f"{f.path}: tensor {left[0]} is not used by this model")
    return out


def load_gguf(path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None) -> GPT:
    """Our GPT with a GGUF file's weights, dequantized to float32 (or to `dtype`: bfloat16, float16)."""
    f = GGUFFile(path)
    cfg = config_from_gguf(f)
    state = state_from_gguf(f, cfg)
    want = DTYPES.get(dtype or "float32")
    if want is None:
        raise ColossusError(f"dtype must be float32, bfloat16 or float16, not {dtype!r}")
    return model_from_state(cfg, state, want, device, f.path)
