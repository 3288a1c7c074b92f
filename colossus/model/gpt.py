"""Decoder-only GPT: RoPE, RMSNorm, grouped-query attention (SDPA), QK-norm, ReLU^2 or SwiGLU MLP (or a
Mixture of SwiGLU experts), untied embeddings, optionally a copy head (colossus.model.copy_head). A KV cache
(colossus.model.kv_cache) makes generation one token per step.

`GPT.forward` serves training and prefill. `GPT.decode_step` is the same network for one new token per
row (the serving engine's decode step), written for few rows, where the cost is the number of ops and
not their size: the query, key and value projections are one matmul, the RMSNorm weights are folded
into the matmuls that follow them, QK-norm and RoPE treat queries and keys together, RoPE comes from a
table made once, and the residual adds ride on the matmuls (addmm). Its weights are packed once
(transposed, fused and scaled: `DecodeWeights`, a second copy of the matmul weights) and repacked when a
parameter changes."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from colossus.model.config import ModelConfig
from colossus.model.copy_head import POINTERS, add_copy, follow_ids
from colossus.model.rope import rope_rows, rope_tables


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight.to(x.dtype), self.eps)


def rope_step_tables(cfg: ModelConfig, n: int, device: torch.device | str,
                     dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, head_dim) tables for positions 0..n-1 such that rope(x) = x * cos + swap(x) * sin, swap(x) being x
    with its two halves swapped: cos repeated over both halves, sin negated over the first (the same values
    as apply_rope's, so the same rotation to the last bit)."""
    cos, sin = rope_rows(cfg.head_dim, n, cfg.rope_theta, cfg.rope_scaling, device)
    return torch.cat((cos, cos), -1).to(dtype), torch.cat((-sin, sin), -1).to(dtype)


def visible_keys(q_pos: torch.Tensor, n_keys: int, window: int = 0) -> torch.Tensor:
    """Which of keys 0..n_keys-1 each query sees: those at or before its position q_pos (..., 1), and with a
    sliding window only the last `window` of them (transformers' sliding-window overlay). (..., n_keys) bool."""
    k_pos = torch.arange(n_keys, device=q_pos.device)
    seen = k_pos <= q_pos
    return seen & (k_pos > q_pos - window) if window else seen


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
        self.q = nn.Linear(cfg.d_model, cfg.n_head * hd, bias=cfg.qkv_bias)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.n_kv_head * hd, bias=cfg.qkv_bias)
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
        elif T > cfg.sliding_window > 0:  # training, or a prefill without a cache: causal within the window
            mask = visible_keys(torch.arange(T, device=x.device)[:, None], T, cfg.sliding_window)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None,
                                           enable_gqa=cfg.n_kv_head != cfg.n_head)
        return self.proj(y.transpose(1, 2).reshape(B, T, cfg.n_head * hd))

    def step(self, x: torch.Tensor, r: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache,
             w: _LayerWeights) -> torch.Tensor:
        """x (B, C) one token per row, r (B, 1) its inverse RMS (the norm's weight is folded into w.qkv);
        cos/sin (B, 1, hd) -> attention output (B, H*hd) before proj."""
        B = x.size(0)
        cfg, hd = self.cfg, self.cfg.head_dim
        H, Hkv = cfg.n_head, cfg.n_kv_head
        qkv = (x @ w.qkv).mul_(r)  # (B, (H + 2 Hkv) hd)
        if w.qkv_bias is not None:
            qkv += w.qkv_bias
        qk = qkv[:, :(H + Hkv) * hd].view(B, H + Hkv, hd)
        v = qkv[:, (H + Hkv) * hd:].view(B, Hkv, 1, hd)
        if w.qk_norm is not None:  # queries' and keys' norms at once
            qk = (qk * _inv_rms(qk, cfg.norm_eps)).mul_(w.qk_norm)
        half = qk.view(B, H + Hkv, 2, hd // 2).flip(2).view(B, H + Hkv, hd)  # (x2, x1): one op, roll is three
        qk = (qk * cos).add_(half.mul_(sin))  # RoPE on queries and keys at once
        k = qk[:, H:, None]  # (B, Hkv, 1, hd)
        k, v, mask = cache.update(self.layer, k, v)  # (B, Hkv, L, hd), additive mask (B, 1, 1, L) or None
        q = qk[:, :H].view(B, Hkv, H // Hkv, hd)  # a kv head's query heads side by side: GQA needs no repeat
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return y.reshape(B, H * hd)


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

    def act(self, h: torch.Tensor) -> torch.Tensor:
        """The nonlinearity between up (already applied) and down."""
        if self.kind == "swiglu":
            gate, h = h.chunk(2, dim=-1)
            return F.silu(gate).mul_(h)
        return F.relu(h).square_()


class MoE(nn.Module):
    """Mixture-of-Experts MLP (Mixtral): a router scores n_experts SwiGLU experts for each token, and the token
    goes through its experts_per_token best, their outputs weighed by the router's softmax over them (the
    top-k probabilities renormalised to sum to 1). Each expert's up holds its gate, then its up (as MLP's)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n, hidden, d = cfg.n_experts, cfg.mlp_hidden, cfg.d_model
        self.k = cfg.experts_per_token
        self.router = nn.Linear(d, n, bias=False)
        self.up = nn.Parameter(torch.empty(n, 2 * hidden, d))
        self.down = nn.Parameter(torch.empty(n, d, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs = F.softmax(self.router(x).float(), dim=-1)
        weight, expert = probs.topk(self.k, dim=-1)  # (N, k)
        weight = weight / weight.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e in expert.unique().tolist():  # each expert once, over the tokens routed to it
            rows, slot = (expert == e).nonzero(as_tuple=True)
            gate, h = F.linear(x[rows], self.up[e]).chunk(2, dim=-1)
            y = F.linear(F.silu(gate) * h, self.down[e]) * weight[rows, slot, None]
            out.index_add_(0, rows, y.to(out.dtype))
        return out.view(shape)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MoE(cfg) if cfg.n_experts else MLP(cfg)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache)
        return x + self.mlp(self.mlp_norm(x))

    def step(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache, w: _LayerWeights) -> torch.Tensor:
        """forward for one token per row, x (B, C); the norms' weights are folded into w (a dense MLP's)."""
        eps = self.attn_norm.eps
        x = torch.addmm(x, self.attn.step(x, _inv_rms(x, eps), cos, sin, cache, w), w.proj)
        if w.up is None:  # experts: routed as in forward
            return x + self.mlp(self.mlp_norm(x))
        return torch.addmm(x, self.mlp.act((x @ w.up).mul_(_inv_rms(x, eps))), w.down)


def _inv_rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """sqrt(n) / RMS over the last dim (n long, keepdim): RMSNorm(x) = x * _inv_rms(x) * weight / sqrt(n), the
    1/sqrt(n) being folded into the weights (DecodeWeights). F.rms_norm runs a dozen ops on CPU and mean
    three; this is four."""
    return (x * x).sum(-1, keepdim=True).add_(eps * x.size(-1)).rsqrt_()


class _LayerWeights:
    """One block's matmul weights as (in, out), contiguous: q, k and v fused into one, and the RMSNorm
    weight before a matmul folded into its rows ((x * r * g) @ W = (x @ (g W)) * r for a row scale r)."""

    def __init__(self, blk: Block):
        a = blk.attn
        c = math.sqrt(a.cfg.d_model)  # _inv_rms leaves out 1/sqrt(n)
        self.qkv = (torch.cat((a.q.weight, a.kv.weight)) * (blk.attn_norm.weight * c)).t().contiguous()
        self.qkv_bias = torch.cat((a.q.bias, a.kv.bias)) if a.cfg.qkv_bias else None
        self.proj = a.proj.weight.t().contiguous()
        self.up = self.down = None  # experts are routed per token: Block.step runs the MoE module
        if isinstance(blk.mlp, MLP):
            self.up = (blk.mlp.up.weight * (blk.mlp_norm.weight * c)).t().contiguous()
            self.down = blk.mlp.down.weight.t().contiguous()
        hd = a.cfg.head_dim
        self.qk_norm = None  # (H + Hkv, hd): the query heads' weight, then the key heads'
        if a.cfg.qk_norm:
            self.qk_norm = torch.cat((a.q_norm.weight.expand(a.cfg.n_head, hd),
                                      a.k_norm.weight.expand(a.cfg.n_kv_head, hd))) * math.sqrt(hd)


class DecodeWeights:
    """What `GPT.decode_step` multiplies by, packed from the parameters once. Transposed weights make
    one-row products about twice as fast on CPU (MKL), and one fused QKV matmul replaces two. `key` tells
    when a parameter changed and they must be repacked."""

    def __init__(self, model: GPT):
        self.params = [model.embed.weight, *(p for p in model.parameters() if p is not model.embed.weight)]
        self.key = self.current_key()
        with torch.no_grad():
            self.layers = [_LayerWeights(blk) for blk in model.blocks]
            self.head = (model.output_weight() * (model.norm.weight * math.sqrt(model.cfg.d_model))).t().contiguous()
            n = model.cfg.seq_len
            self.cos, self.sin = rope_step_tables(model.cfg, n, self.head.device, self.head.dtype)

    def current_key(self) -> tuple:
        """Every parameter's version (bumped by in-place changes: optimizer steps, load_state_dict) and the
        embedding's storage (new after .to(); a data_ptr for each parameter would cost ~40 us a step)."""
        return self.params[0].data_ptr(), *(p._version for p in self.params)


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.copy_head:
            self.copy_gate = nn.Linear(cfg.d_model, POINTERS)
        self.init_weights()
        self.tie()

    def tie(self) -> None:
        """With tie_embeddings, the head shares the embedding's matrix (call again after .to_empty(), which
        makes each module a parameter of its own)."""
        if self.cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    @torch.no_grad()
    def init_weights(self) -> None:
        d = self.cfg.d_model
        nn.init.normal_(self.embed.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        if self.cfg.copy_head:  # copies nothing until it learns when to
            nn.init.zeros_(self.copy_gate.weight)
            nn.init.zeros_(self.copy_gate.bias)
        bound = math.sqrt(3.0) / math.sqrt(d)  # uniform with std 1/sqrt(fan_in)
        for blk in self.blocks:
            ups = (blk.mlp.router.weight, blk.mlp.up) if self.cfg.n_experts else (blk.mlp.up.weight,)
            for w in (blk.attn.q.weight, blk.attn.kv.weight, *ups):
                nn.init.uniform_(w, -bound, bound)
            for lin in (blk.attn.q, blk.attn.kv):
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
            # residual branches start as identity: zero the projections back into the stream
            nn.init.zeros_(blk.attn.proj.weight)
            nn.init.zeros_(blk.mlp.down if self.cfg.n_experts else blk.mlp.down.weight)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                loss_mask: torch.Tensor | None = None, cache=None,
                positions: torch.Tensor | None = None, last_only: bool = False,
                follow: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, V); with targets, the mean cross-entropy instead.

        loss_mask (B, T) weighs the targets (0 drops one: chat fine-tuning trains on the assistant's
        tokens only). With a cache, positions continue from what it already holds. last_only gives
        the logits of the last position only (B, 1, V): a prefill needs no more, and the output head
        over every prompt token is a sixth of its cost. follow (B, T, POINTERS): the copy head's follow ids of idx
        (copy_head.follow_ids), which it computes itself from idx without a cache, and from a KVCache's
        FollowMaps with one; the serving engine's views give them."""
        B, T = idx.shape
        if not self.cfg.copy_head:
            follow = None
        elif follow is None:
            follow = self._follow(idx, cache)
        if positions is None:
            start = cache.length if cache is not None else 0
            positions = torch.arange(start, start + T, device=idx.device)
        cos, sin = rope_tables(self.cfg.head_dim, positions, self.cfg.rope_theta, self.cfg.rope_scaling)
        x = self.embed(idx)  # (B, T, C)
        for blk in self.blocks:
            x = blk(x, cos, sin, cache)
        if cache is not None:
            cache.advance(T)
        if last_only and targets is None:
            x = x[:, -1:]
            follow = None if follow is None else follow[:, -1:]
        x = self.norm(x)
        logits = self.lm_head(x).float()
        if follow is not None:
            logits = add_copy(logits, self.copy_gate(x).float(), follow)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        if loss_mask is None:
            return loss.mean()
        m = loss_mask.reshape(-1).to(loss.dtype)
        return (loss * m).sum() / m.sum().clamp(min=1.0)

    def _follow(self, idx: torch.Tensor, cache) -> torch.Tensor:
        """The follow ids of idx: from idx alone without a cache, from a KVCache's per-row FollowMaps with one."""
        if cache is None:
            return follow_ids(idx)
        maps = getattr(cache, "follow", None)
        if maps is None:
            raise ValueError("a model with a copy head needs the follow ids of tokens fed to this cache: pass follow=")
        return torch.tensor([m.extend(row) for m, row in zip(maps, idx.tolist(), strict=True)], device=idx.device)

    def output_weight(self) -> torch.Tensor:
        """The output head's matrix (V, C), and with a copy head its gates' rows after it (V + POINTERS, C): the
        one matmul the decode steps end with, whose columns copy_logits reads."""
        if not self.cfg.copy_head:
            return self.lm_head.weight
        return torch.cat((self.lm_head.weight, self.copy_gate.weight))

    def copy_logits(self, out: torch.Tensor, follow: torch.Tensor | None) -> torch.Tensor:
        """The output head's columns (B, V + POINTERS with a copy head: the gates' values before their bias last)
        -> logits (B, V): each gate's bonus added at the row's follow token (follow (B, POINTERS))."""
        if not self.cfg.copy_head:
            return out
        if follow is None:
            raise ValueError("a model with a copy head needs each row's follow id: pass follow=")
        V = self.cfg.vocab_size
        return add_copy(out[:, :V], out[:, V:] + self.copy_gate.bias.to(out.dtype), follow)

    def decode_weights(self) -> DecodeWeights:
        """The packed weights for decode_step, repacked when a parameter changed in place (an optimizer step,
        load_state_dict) or the model moved (.to()). (A module given a new Parameter object, or one
        parameter's .data swapped, is not seen: checking for that costs more than a small model's step.)"""
        dw = self.__dict__.get("_decode_weights")
        if dw is None or dw.key != dw.current_key():
            dw = self.__dict__["_decode_weights"] = DecodeWeights(self)
        return dw

    @torch.no_grad()
    def decode_step(self, tokens: torch.Tensor, positions: torch.Tensor, cache,
                    max_position: int | None = None, follow: torch.Tensor | None = None) -> torch.Tensor:
        """One new token per row: tokens (B,) at positions (B,) -> logits (B, V), as forward would give
        (within float rounding). cache.update(layer, k, v) stores k, v (B, Hkv, 1, hd) and returns the keys
        and values to attend to (B, Hkv, L, hd) with an additive mask (B, 1, 1, L) or None; the cache
        tracks its own lengths (advance is not called). max_position: the largest of positions, if the caller
        knows it (reading it from a GPU tensor waits for the GPU). follow (B, POINTERS): each row's follow ids, which a
        model with a copy head needs. No autograd: inference only."""
        w = self.decode_weights()
        top = int(positions.max()) if max_position is None else max_position
        if top >= w.cos.size(0):  # past the trained length: extend the table
            w.cos, w.sin = rope_step_tables(self.cfg, 2 * top + 1, w.cos.device, w.cos.dtype)
        cos, sin = w.cos[positions, None], w.sin[positions, None]  # (B, 1, hd), shared by every layer
        x = F.embedding(tokens, self.embed.weight)  # (B, C)
        for blk, lw in zip(self.blocks, w.layers, strict=True):
            x = blk.step(x, cos, sin, cache, lw)
        return self.copy_logits((x @ w.head).mul_(_inv_rms(x, self.norm.eps)).float(), follow)

    def matmul_weights(self) -> list[nn.Parameter]:
        """The weights that multiply activations (not the embedding table, not the norms' gains)."""
        out = [self.lm_head.weight, *([self.copy_gate.weight] if self.cfg.copy_head else [])]
        for blk in self.blocks:
            out += [blk.attn.q.weight, blk.attn.kv.weight, blk.attn.proj.weight]
            out += ([blk.mlp.router.weight, blk.mlp.up, blk.mlp.down] if self.cfg.n_experts else
                    [blk.mlp.up.weight, blk.mlp.down.weight])
        return out

    @torch.no_grad()
    def round_matmul_weights(self, dtype: torch.dtype) -> None:
        """Round the matmul weights to dtype's precision in place, keeping their own dtype: the model that
        serving with weights of that dtype computes, whichever path computes it."""
        for w in self.matmul_weights():
            w.copy_(w.to(dtype))

    def num_params(self, embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embedding else n - self.embed.weight.numel()

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 x (matmul params) + attention scores and values over seq_len."""
        c = self.cfg
        attn = 12 * c.n_layer * c.n_head * c.head_dim * c.seq_len / 2  # causal: half the square
        idle = c.n_layer * (c.n_experts - c.experts_per_token) * 3 * c.d_model * c.mlp_hidden if c.n_experts else 0
        return 6 * (self.num_params(embedding=False) - idle) + attn  # a token runs experts_per_token experts
