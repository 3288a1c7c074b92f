"""A bounded LRU cache of the KV of prompt prefixes, in blocks of `block` tokens.

A block is keyed by its tokens and by the block before it (its parent's id), so a key names the
whole prefix up to it exactly: no hash collisions, and two prompts share cached blocks for as long
as their tokens agree (a system prompt, earlier turns of a conversation, n > 1 choices of one
prompt). On admission the engine copies the matched blocks into the request's slot and prefills
only the rest; after prefill (and when a request finishes) it stores the full blocks it computed.

When full, the least recently used block goes. A lookup touches the matched blocks from the last
to the first, so a parent is always more recent than its children and leaves are evicted first."""

from __future__ import annotations

from collections import OrderedDict

import torch

from colossus.infer.kv_pool import SlotPool
from colossus.model.config import ModelConfig


class PrefixCache:
    BLOCK = 16  # tokens per block (vLLM's default): a shared prefix is reused to within 15 tokens

    def __init__(self, cfg: ModelConfig, capacity_tokens: int, block: int = BLOCK,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.block = block
        self.capacity = capacity_tokens // block  # blocks
        shape = (self.capacity, cfg.n_layer, cfg.n_kv_head, block, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.entries: OrderedDict[tuple[int, tuple[int, ...]], tuple[int, int]] = OrderedDict()  # key -> (id, index)
        self.free = list(range(self.capacity - 1, -1, -1))
        self.next_id = 1  # 0 is the parent of a first block

    @property
    def tokens(self) -> int:
        """Tokens whose KV is held."""
        return len(self.entries) * self.block

    def _key(self, parent: int, ids: list[int], b: int) -> tuple[int, tuple[int, ...]]:
        return parent, tuple(ids[b * self.block:(b + 1) * self.block])

    def _touch(self, keys: list) -> None:
        for key in reversed(keys):  # parents end up more recent than their children
            self.entries.move_to_end(key)

    def match(self, ids: list[int], limit: int) -> list[int]:
        """Indices of the cached blocks that start ids, covering at most `limit` tokens."""
        keys, found, parent = [], [], 0
        for b in range(min(limit, len(ids)) // self.block):
            key = self._key(parent, ids, b)
            hit = self.entries.get(key)
            if hit is None:
                break
            keys.append(key)
            found.append(hit[1])
            parent = hit[0]
        self._touch(keys)
        return found

    def load(self, blocks: list[int], pool: SlotPool, slot: int) -> int:
        """Copy the blocks into the start of a slot; return the tokens copied."""
        if not blocks:
            return 0
        n = len(blocks) * self.block
        idx = torch.tensor(blocks, device=self.k.device)
        for src, dst in ((self.k, pool.k), (self.v, pool.v)):
            got = src.index_select(0, idx)  # (n_blocks, n_layer, Hkv, block, hd)
            dst[:, slot, :, :n] = got.permute(1, 2, 0, 3, 4).reshape(dst.size(0), dst.size(2), n, dst.size(4))
        return n

    def store(self, ids: list[int], pool: SlotPool, slot: int) -> None:
        """Cache the full blocks of ids, whose KV sits at the start of the slot."""
        keys, parent = [], 0
        for b in range(min(len(ids) // self.block, self.capacity)):
            key = self._key(parent, ids, b)
            hit = self.entries.get(key)
            if hit is None:
                if not self.free:  # the least recently used block goes
                    _, (_, freed) = self.entries.popitem(last=False)
                    self.free.append(freed)
                hit = (self.next_id, self.free.pop())
                self.next_id += 1
                a = b * self.block
                self.k[hit[1]] = pool.k[:, slot, :, a:a + self.block]
                self.v[hit[1]] = pool.v[:, slot, :, a:a + self.block]
                self.entries[key] = hit
            else:
                self.entries.move_to_end(key)  # keep the chain out of reach of the eviction above
            keys.append(key)
            parent = hit[0]
        self._touch(keys)
