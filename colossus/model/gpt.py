"""Decoder-only GPT: RoPE, RMSNorm, grouped-query attention (SDPA), QK-norm, ReLU^2 or SwiGLU MLP,
untied embeddings. A KV cache (colossus.model.kv_cache) makes generation one token per step."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from colossus.model.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight.to(x.dtype), self.eps)


def rope_tables(head_dim: int, positions: torch.Tensor, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (*positions.shape, head_dim/2) for the given integer positions."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim))
    angles = positions.float()[..., None] * inv_freq  # (..., hd/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, H, T, hd); cos/sin: (T, hd/2) or (B, T, hd/2). Rotates the two halves of each head."""
    if cos.dim() == 2:
        cos, sin = cos[None, None], sin[None, None]  # (1, 1, T, hd/2)
    else:
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, hd/2)
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.cfg, self.layer = cfg, layer
        hd = cfg.head_dim
        self.q = nn.Linear(cfg.d_model, cfg.n_head * hd, bias=False)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.n_kv_head * hd, bias=False)
        self.proj = nn.Linear(cfg.n_head * hd, cfg.d_model, bias=False)
        self.q_norm = RMSNorm(hd, cfg.norm_eps) if cfg.qk_norm else nn.Identity()
        self.k_norm = RMSNorm(hd, cfg.norm_eps) if cfg.qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, _ = x.shape
        cfg, hd = self.cfg, self.cfg.head_dim
        q = self.q(x).view(B, T, cfg.n_head, hd).transpose(1, 2)  # (B, H, T, hd)
        k, v = self.kv(x).view(B, T, 2, cfg.n_kv_head, hd).permute(2, 0, 3, 1, 4)  # each (B, Hkv, T, hd)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask, causal = None, True
        if cache is not None:
            k, v, mask = cache.update(self.layer, k, v)  # k, v: (B, Hkv, T_total, hd)
            causal = mask is None and k.size(2) == T
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None,
                                           enable_gqa=cfg.n_kv_head != cfg.n_head)
        return self.proj(y.transpose(1, 2).reshape(B, T, cfg.n_head * hd))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.kind = cfg.mlp
        hidden = cfg.mlp_hidden
        self.up = nn.Linear(cfg.d_model, hidden * (2 if self.kind == "swiglu" else 1), bias=False)
        self.down = nn.Linear(hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.kind == "swiglu":
            gate, h = h.chunk(2, dim=-1)
            h = F.silu(gate) * h
        else:
            h = F.relu(h).square()
        return self.down(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache)
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)  # untied from embed
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        d = self.cfg.d_model
        nn.init.normal_(self.embed.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        bound = math.sqrt(3.0) / math.sqrt(d)  # uniform with std 1/sqrt(fan_in)
        for blk in self.blocks:
            for lin in (blk.attn.q, blk.attn.kv, blk.mlp.up):
                nn.init.uniform_(lin.weight, -bound, bound)
            # residual branches start as identity: zero the projections back into the stream
            nn.init.zeros_(blk.attn.proj.weight)
            nn.init.zeros_(blk.mlp.down.weight)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                loss_mask: torch.Tensor | None = None, cache=None,
                positions: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, V); with targets, the mean cross-entropy instead.

        loss_mask (B, T) weighs the targets (0 drops one: chat fine-tuning trains on the assistant's
        tokens only). With a cache, positions continue from what it already holds. last_only gives
        the logits of the last position only (B, 1, V): a prefill needs no more, and the output head
        over every prompt token is a sixth of its cost."""
        B, T = idx.shape
        if positions is None:
            start = cache.length if cache is not None else 0
            positions = torch.arange(start, start + T, device=idx.device)
        cos, sin = rope_tables(self.cfg.head_dim, positions, self.cfg.rope_theta)
        x = self.embed(idx)  # (B, T, C)
        for blk in self.blocks:
            x = blk(x, cos, sin, cache)
        if cache is not None:
            cache.advance(T)
        if last_only and targets is None:
            x = x[:, -1:]
        x = self.norm(x)
        if targets is None:
            return self.lm_head(x).float()
        logits = self.lm_head(x).float()
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        if loss_mask is None:
            return loss.mean()
        m = loss_mask.reshape(-1).to(loss.dtype)
        return (loss * m).sum() / m.sum().clamp(min=1.0)

    def num_params(self, embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embedding else n - self.embed.weight.numel()

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 x (matmul params) + attention scores and values over seq_len."""
        c = self.cfg
        attn = 12 * c.n_layer * c.n_head * c.head_dim * c.seq_len / 2  # causal: half the square
        return 6 * self.num_params(embedding=False) + attn
