"""Model shapes: presets, shapes given by hand, and Colossus model configs; parameter and FLOP counts.

Embeddings are untied (as in colossus/model/gpt.py and Llama 3): the input embedding is a lookup
with no FLOPs, the output head is a matmul. Norm weights and biases are too small to count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from colossus.errors import ColossusError


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer, dense or mixture-of-experts (every layer MoE)."""

    name: str
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int
    d_ff: int
    """Hidden width of one MLP (of one expert in an MoE)."""
    vocab_size: int
    gated_mlp: bool = True
    """SwiGLU/GeGLU (three matrices) or a plain two-matrix MLP (GeLU, squared ReLU)."""
    n_experts: int = 1
    top_k: int = 1
    head_dim: int = 0
    """0 means d_model // n_head."""

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "n_head", "n_kv_head", "d_ff", "vocab_size", "n_experts", "top_k"):
            if getattr(self, name) < 1:
                raise ColossusError(f"model {name} must be at least 1, not {getattr(self, name)}")
        if self.n_head % self.n_kv_head:
            raise ColossusError(f"{self.n_head} attention heads do not divide into {self.n_kv_head} KV heads")
        if not self.head_dim and self.d_model % self.n_head:
            raise ColossusError(f"d_model {self.d_model} is not divisible by {self.n_head} heads")
        if self.top_k > self.n_experts:
            raise ColossusError(f"top-k {self.top_k} is more than the {self.n_experts} experts")

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def hd(self) -> int:
        return self.head_dim or self.d_model // self.n_head

    @property
    def q_dim(self) -> int:
        return self.n_head * self.hd

    @property
    def kv_dim(self) -> int:
        return self.n_kv_head * self.hd

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.gated_mlp else 2

    @property
    def attn_params(self) -> int:
        """Q, K, V and output projections of one layer."""
        return self.d_model * (self.q_dim + 2 * self.kv_dim) + self.q_dim * self.d_model

    @property
    def expert_params(self) -> int:
        """One MLP (one expert)."""
        return self.mlp_matrices * self.d_model * self.d_ff

    @property
    def router_params(self) -> int:
        return self.d_model * self.n_experts if self.is_moe else 0

    @property
    def layer_params(self) -> int:
        return self.attn_params + self.n_experts * self.expert_params + self.router_params

    @property
    def embedding_params(self) -> int:
        """Input embedding plus output head."""
        return 2 * self.vocab_size * self.d_model

    @property
    def params(self) -> int:
        return self.n_layer * self.layer_params + self.embedding_params

    @property
    def active_params(self) -> int:
        """Parameters one token goes through (its top-k experts only)."""
        per_layer = self.attn_params + self.top_k * self.expert_params + self.router_params
        return self.n_layer * per_layer + self.embedding_params

    def forward_flops_per_token(self, seq_len: int) -> dict[str, float]:
        """Forward FLOPs of one token, by kind. Attention is causal: a query sees (s+1)/2 keys on average."""
        layer_matmul = 2 * (self.attn_params + self.top_k * self.expert_params + self.router_params)
        attention = 2 * 2 * self.q_dim * (seq_len + 1) / 2  # QK^T and PV
        return {"matmul": self.n_layer * layer_matmul, "attention": self.n_layer * attention,
                "head": 2 * self.d_model * self.vocab_size}

    def model_flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs of one token: 3x the forward (the backward is twice it), no recomputation.
        The MFU numerator: 6 * active parameters (without the embedding lookup) plus causal attention."""
        return 3 * sum(self.forward_flops_per_token(seq_len).values())


PRESETS: dict[str, ModelShape] = {
    m.name: m
    for m in (
        # GPT-3 paper (Brown et al. 2020) Table 2.1; the 51,200 vocabulary is Megatron's padding of 50,257.
        ModelShape("gpt3-175b", 96, 12288, 96, 96, 49152, 51200, gated_mlp=False),
        # Llama 3 paper (Dubey et al. 2024) Table 3.
        ModelShape("llama3-8b", 32, 4096, 32, 8, 14336, 128256),
        ModelShape("llama3-70b", 80, 8192, 64, 8, 28672, 128256),
        ModelShape("llama3-405b", 126, 16384, 128, 8, 53248, 128256),
        # xAI's open grok-1 release: 64 layers, 48 query / 8 KV heads of 128, 8 experts with 2 active.
        ModelShape("grok-1", 64, 6144, 48, 8, 32768, 131072, n_experts=8, top_k=2),
        # BigScience tr11-176B-ml README; Megatron-Turing NLG (Smith et al. 2022).
        ModelShape("bloom-176b", 70, 14336, 112, 112, 57344, 250880, gated_mlp=False),
        ModelShape("mt-nlg-530b", 105, 20480, 128, 128, 81920, 51200, gated_mlp=False),
        # A Llama-style dense model of one trillion parameters (0.996e12), for planning exercises.
        ModelShape("dense-1t", 120, 25600, 200, 8, 89600, 128256),
    )
}


def from_colossus_config(path: Path) -> tuple[ModelShape, int]:
    """A Colossus ModelConfig JSON file (colossus/model/config.py); returns the shape and its seq_len."""
    from colossus.model.config import ModelConfig

    cfg = ModelConfig.load(Path(path))
    shape = ModelShape(Path(path).stem, cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_kv_head,
                       cfg.mlp_hidden, cfg.vocab_size, gated_mlp=cfg.mlp == "swiglu")
    return shape, cfg.seq_len


def resolve_model(name_or_path: str) -> tuple[ModelShape, int | None]:
    """A preset name, or a path to a model config JSON; the int is the config's own seq_len, if any."""
    if name_or_path.lower() in PRESETS:
        return PRESETS[name_or_path.lower()], None
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if path.is_dir():
            path = path / "config.json"
        try:
            return from_colossus_config(path)
        except json.JSONDecodeError as e:
            raise ColossusError(f"{path} is not a model config: {e}") from e
    raise ColossusError(f"unknown model {name_or_path!r}: use a preset ({', '.join(PRESETS)}), "
                        "a model config .json, or give the shape with --layers/--d-model/...")


_SUFFIX = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "T": 1e12, "P": 1e15,
           "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40}


def parse_count(text: str | float | int) -> float:
    """'16M' -> 16e6, '15T' -> 15e12, '16Mi' -> 16 * 2**20, '2e6' -> 2e6."""
    if isinstance(text, (int, float)):
        return float(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KkMmGgBbTtPp][Ii]?)?\s*", text)
    if not match:
        raise ColossusError(f"cannot read {text!r} as a count: write e.g. 8192, 16M, 15T or 16Mi")
    return float(match.group(1)) * _SUFFIX[(match.group(2) or "").upper()]
