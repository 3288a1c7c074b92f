"""A contiguous KV cache for generating a batch of rows that share one position.

Every row holds the same number of tokens, so one integer is the whole state. (The serving engine
keeps its own pool of slots, with a position per request: colossus/infer/kv_pool.py.)"""

from __future__ import annotations

import torch

from colossus.model.config import ModelConfig
from colossus.model.copy_head import FollowMap
from colossus.model.gpt import visible_keys


class KVCache:
    def __init__(self, cfg: ModelConfig, batch: int, max_len: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        shape = (cfg.n_layer, batch, cfg.n_kv_head, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len, self.window = max_len, cfg.sliding_window
        self.length = 0  # tokens already cached, same for every row
        self.follow = [FollowMap() for _ in range(batch)]  # each row's history, for a copy head (GPT._follow)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store k, v (B, Hkv, T, hd) after what is cached; return everything cached for this layer
        and the attention mask the new queries need (None when plain causal or a single query)."""
        T = k.size(2)
        end = self.length + T
        if end > self.max_len:
            raise ValueError(f"KV cache full: {end} tokens > {self.max_len}")
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        mask = None
        window = self.window if end > self.window > 0 else 0
        if (self.length > 0 and T > 1) or window:  # the past and the causal part of the new, within the window
            mask = visible_keys(torch.arange(self.length, end, device=k.device)[:, None], end, window)  # (T, end)
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end], mask

    def advance(self, n: int) -> None:
        self.length += n

    def reset(self) -> None:
        self.length = 0
        self.follow = [FollowMap() for _ in self.follow]
