"""The model's shape: one dataclass, saved beside the weights as config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from colossus.errors import ColossusError
from colossus.model.rope import check_scaling


@dataclass
class ModelConfig:
    """Shape of a decoder-only GPT."""

    vocab_size: int = 4096
    """Rows of the embedding and of the output head (the tokenizer's size, padded)."""
    seq_len: int = 256
    """Longest sequence the model is trained on; RoPE tables are sized from it."""
    n_layer: int = 4
    """Transformer blocks."""
    d_model: int = 256
    """Width of the residual stream."""
    n_head: int = 4
    """Query heads; head_dim = d_model // n_head unless head_size is set."""
    n_kv_head: int = 4
    """Key/value heads (grouped-query attention when fewer than n_head)."""
    mlp: str = "relu2"
    """'relu2' (squared ReLU) or 'swiglu' (gated)."""
    mlp_ratio: float = 4.0
    """Hidden width of the MLP over d_model (swiglu uses 2/3 of it per branch), unless mlp_width is set."""
    n_experts: int = 0
    """A Mixture-of-Experts MLP of n_experts SwiGLU experts, each token routed to experts_per_token of them
    (Mixtral); 0: one dense MLP."""
    experts_per_token: int = 2
    mlp_width: int = 0
    """The MLP's hidden width (per branch for swiglu), as imported models give it; 0: from mlp_ratio."""
    head_size: int = 0
    """Width of each attention head when it is not d_model // n_head (Qwen3); 0: d_model // n_head."""
    qkv_bias: bool = False
    """Biases on the query, key and value projections (Qwen2)."""
    tie_embeddings: bool = False
    """The output head shares the embedding's matrix (SmolLM2, Qwen3's small models)."""
    rope_theta: float = 10000.0
    """RoPE base."""
    rope_scaling: dict | None = None
    """RoPE frequency scaling of imported models (colossus.model.rope): {"rope_type": "linear" | "dynamic" |
    "llama3" | "yarn", and that scaling's parameters}; None: plain RoPE."""
    sliding_window: int = 0
    """Each query attends to the last sliding_window keys, its own included (Mistral); 0: to all before it."""
    qk_norm: bool = True
    """RMS-normalise queries and keys per head before attention."""
    copy_head: bool = False
    """A gate on the final hidden state adds to the logit of the token that followed the current token's last
    occurrence in the context (colossus.model.copy_head): copying from the context without an induction head."""
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.d_model % self.n_head and not self.head_size:
            raise ColossusError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ColossusError(f"n_head {self.n_head} is not divisible by n_kv_head {self.n_kv_head}")
        if self.head_dim % 2:
            raise ColossusError("head_dim must be even for RoPE")
        check_scaling(self.rope_scaling)
        if self.sliding_window < 0:
            raise ColossusError(f"sliding_window must be >= 0, not {self.sliding_window}")
        if self.mlp not in ("relu2", "swiglu"):
            raise ColossusError(f"mlp must be 'relu2' or 'swiglu', not {self.mlp!r}")
        if self.n_experts and (self.mlp != "swiglu" or not 1 <= self.experts_per_token <= self.n_experts):
            raise ColossusError(f"a Mixture-of-Experts MLP needs mlp 'swiglu' and 1 <= experts_per_token <= "
                                f"n_experts, not {self.mlp!r} and {self.experts_per_token} of {self.n_experts}")

    @property
    def head_dim(self) -> int:
        return self.head_size or self.d_model // self.n_head

    @property
    def mlp_hidden(self) -> int:
        if self.mlp_width:
            return self.mlp_width
        hidden = int(self.mlp_ratio * self.d_model)
        if self.mlp == "swiglu":
            hidden = int(2 * hidden / 3)
        return (hidden + 31) // 32 * 32

    @classmethod
    def from_depth(cls, depth: int, vocab_size: int, seq_len: int, aspect: int = 64, **kw) -> ModelConfig:
        """One dial: width = depth * aspect, heads of 64 (or fewer when narrow)."""
        d_model = depth * aspect
        head_dim = 64 if d_model >= 256 else 32
        n_head = max(1, d_model // head_dim)
        return cls(vocab_size=vocab_size, seq_len=seq_len, n_layer=depth, d_model=d_model,
                   n_head=n_head, n_kv_head=kw.pop("n_kv_head", n_head), **kw)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ColossusError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError as e:
            raise ColossusError(f"no model config at {path}") from e
        except (json.JSONDecodeError, TypeError) as e:
            raise ColossusError(f"model config {path} is not valid JSON: {e}") from e
