"""The engine's KV cache: a fixed pool of slots, one per running request, allocated once.

Keys and values live in two tensors of shape (n_layer, slots, Hkv, max_len, hd). A request owns one
slot for its whole life and its tokens sit contiguously in it, so a decode step attends to a plain
view `k[layer, :B, :, :L]` (L: the longest row) with a mask for the shorter rows, and writes the new
token of every row with one index_copy_ at per-row positions. On CPU this is much cheaper than
gathering pages every step; memory is bounded by construction (slots x max_len tokens).

Running requests always occupy slots 0..B-1: when one leaves, the last one moves into its slot (one
copy per finished request instead of a gather per step).

The views below are what `GPT.forward(cache=...)` calls: `update(layer, k, v)` stores the new keys
and values and returns everything to attend to with its mask; `advance(T)` is a no-op because the
engine tracks lengths itself.

The pool may hold keys and values in a narrower type than the model computes in (kv_dtype=bfloat16
under a float32 model: half the memory, and half the bytes a decode step reads, which is most of what
attention costs at many rows). They are rounded when stored and widened when read, so attention itself
stays in the model's type."""

from __future__ import annotations

import torch

from colossus.model.config import ModelConfig
from colossus.model.gpt import visible_keys


class SlotPool:
    def __init__(self, cfg: ModelConfig, slots: int, max_len: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, kv_dtype: torch.dtype | None = None):
        """dtype: the model's (attention computes in it); kv_dtype: what the pool stores (default: dtype)."""
        shape = (cfg.n_layer, slots, cfg.n_kv_head, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=kv_dtype or dtype)
        self.v = torch.zeros(shape, device=device, dtype=kv_dtype or dtype)
        self.slots, self.max_len, self.device, self.dtype = slots, max_len, torch.device(device), dtype
        self.window = cfg.sliding_window  # a query sees only the last `window` keys (0: all before it)

    @property
    def bytes_per_token(self) -> int:
        n_layer, _, hkv, _, hd = self.k.shape
        return 2 * n_layer * hkv * hd * self.k.element_size()

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` tokens of slot src into slot dst (compaction)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]

    def prefill_view(self, slot: int, start: int, n_new: int) -> PrefillView:
        return PrefillView(self, slot, start, n_new)

    def batch_prefill_view(self, first: int, prompts: list[list[int]], starts: list[int]) -> BatchPrefillView:
        return BatchPrefillView(self, first, prompts, starts)

    def decode_view(self, positions: list[int]) -> DecodeView:
        return DecodeView(self, positions)


def additive_mask(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where visible, -inf elsewhere: SDPA converts a boolean mask to this in every layer; once a step
    is enough."""
    return torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill_(~visible, float("-inf"))


class PrefillView:
    """One request's prompt (or what the prefix cache did not cover): n_new tokens after `start`."""

    def __init__(self, pool: SlotPool, slot: int, start: int, n_new: int):
        self.pool, self.slot, self.start, self.end = pool, slot, start, start + n_new
        self.mask = None  # from scratch: plain causal attention (the model sets is_causal)
        window = pool.window if self.end > pool.window > 0 else 0
        if start > 0 or window:  # new queries see the cached prefix and the causal part of the new tokens
            q_pos = torch.arange(start, self.end, device=pool.device)[:, None]
            self.mask = additive_mask(visible_keys(q_pos, self.end, window), pool.dtype)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        s, a, b = self.slot, self.start, self.end
        self.pool.k[layer, s, :, a:b] = k[0]
        self.pool.v[layer, s, :, a:b] = v[0]
        return (self.pool.k[layer, s:s + 1, :, :b].to(k.dtype), self.pool.v[layer, s:s + 1, :, :b].to(v.dtype),
                self.mask)

    def advance(self, n: int) -> None:
        pass


class BatchPrefillView:
    """The prompts of several requests in one forward pass, row i in slot first + i: prompts[i][starts[i]:]
    (the prefix cache holds the rest), left-padded to the longest, so that every row's last token is the
    batch's last position (`last_only` gives each row's next-token logits). Only real tokens write keys and
    values; a padding query sees key 0 of its slot and its output is never used."""

    def __init__(self, pool: SlotPool, first: int, prompts: list[list[int]], starts: list[int]):
        A, dev = len(prompts), pool.device
        new = [len(p) - s for p, s in zip(prompts, starts, strict=True)]
        T = max(new)
        self.pool, self.first, self.A, self.L = pool, first, A, max(len(p) for p in prompts)
        rows, positions, real = [], [], []  # left-padded token ids and positions; (row, t) of each real token
        for i, (p, s, n) in enumerate(zip(prompts, starts, new, strict=True)):
            rows.append([0] * (T - n) + p[s:])
            positions.append([0] * (T - n) + list(range(s, len(p))))
            real += [(i, t, s + t - (T - n)) for t in range(T - n, T)]
        self.tokens = torch.tensor(rows, device=dev)  # (A, T)
        self.positions = torch.tensor(positions, device=dev)  # (A, T)
        _, _, hkv, max_len, _ = pool.k.shape
        src = torch.tensor([i * T + t for i, t, _ in real])  # rows of the batch's (A*T, Hkv, hd) keys
        dst = torch.tensor([(first + i) * hkv * max_len + pos for i, _, pos in real])
        self.src = src.to(dev)
        self.dst = (dst[:, None] + torch.arange(hkv)[None, :] * max_len).reshape(-1).to(dev)  # (N*Hkv,)
        visible = visible_keys(self.positions[:, :, None], self.L, pool.window)  # (A, T, L)
        self.mask = additive_mask(visible, pool.dtype)[:, None]  # (A, 1, T, L)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        kl, vl = self.pool.k[layer], self.pool.v[layer]  # (slots, Hkv, max_len, hd)
        hd = k.size(-1)
        for new, dst in ((k, kl), (v, vl)):  # (A, Hkv, T, hd) -> the real tokens' (N*Hkv, hd), head fastest
            rows = new.transpose(1, 2).reshape(-1, new.size(1), hd).index_select(0, self.src)
            dst.view(-1, hd).index_copy_(0, self.dst, rows.reshape(-1, hd).to(dst.dtype))
        a, b = self.first, self.first + self.A
        return kl[a:b, :, :self.L].to(k.dtype), vl[a:b, :, :self.L].to(v.dtype), self.mask

    def advance(self, n: int) -> None:
        pass


class DecodeView:
    """One token for each of the rows in slots 0..B-1; row i's token goes to position positions[i]."""

    def __init__(self, pool: SlotPool, positions: list[int]):
        self._setup(pool, torch.tensor(positions, device=pool.device), max(positions) + 1,
                    same=min(positions) == max(positions))  # rows of equal length: a slice, and no mask

    @classmethod
    def fixed(cls, pool: SlotPool, positions: torch.Tensor, keys: int) -> DecodeView:
        """The view with shapes fixed in advance (a CUDA graph's): positions (B,) a tensor read only when the
        step runs, the keys up to `keys` (more than any position) and always a mask."""
        view = cls.__new__(cls)
        view._setup(pool, positions, keys, same=False)
        return view

    def _setup(self, pool: SlotPool, positions: torch.Tensor, L: int, same: bool) -> None:
        self.pool, self.B, self.positions, self.L, self.same = pool, positions.size(0), positions, L, same
        self.mask = self.flat = None
        if not same or L > pool.window > 0:
            visible = visible_keys(positions[:, None], L, pool.window)  # (B, L)
            self.mask = additive_mask(visible, pool.dtype)[:, None, None]  # (B, 1, 1, L)
        if not same:
            dev = pool.device
            _, _, hkv, max_len, _ = pool.k.shape
            heads = torch.arange(hkv, device=dev)[None, :] * max_len
            rows = torch.arange(self.B, device=dev)[:, None] * (hkv * max_len)
            self.flat = (rows + heads + positions[:, None]).reshape(-1)  # (B*Hkv,) rows of a layer's (-1, hd) view

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        kl, vl = self.pool.k[layer], self.pool.v[layer]  # (slots, Hkv, max_len, hd)
        if self.same:
            p = self.L - 1
            kl[:self.B, :, p:p + 1] = k
            vl[:self.B, :, p:p + 1] = v
        else:  # index_copy_ into the flat view: half the cost of an advanced-index assignment
            hd = k.size(-1)
            kl.view(-1, hd).index_copy_(0, self.flat, k.reshape(-1, hd).to(kl.dtype))
            vl.view(-1, hd).index_copy_(0, self.flat, v.reshape(-1, hd).to(vl.dtype))
        return kl[:self.B, :, :self.L].to(k.dtype), vl[:self.B, :, :self.L].to(v.dtype), self.mask

    def advance(self, n: int) -> None:
        pass
