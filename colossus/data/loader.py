"""A batch loader over token shards: deterministic for a seed, resumable, split across ranks.

An epoch is a seeded permutation of fixed-length windows (for a document stream, the windows are
shifted by a seeded offset each epoch so documents are cut in new places; packed chat rows are used
whole). Each step takes batch * world_size windows; rank r takes its own slice of them. The state is
two integers, saved in every checkpoint."""

from __future__ import annotations

import numpy as np
import torch

from colossus.data.shards import Shards
from colossus.errors import ColossusError


class TokenLoader:
    def __init__(self, shards: Shards, batch_size: int, seq_len: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.shards, self.batch_size, self.seed = shards, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.row_len = shards.row_len
        if self.row_len and self.row_len != seq_len + 1:
            raise ColossusError(f"shards are packed in rows of {self.row_len} tokens; seq_len must be "
                                f"{self.row_len - 1}, not {seq_len}")
        self.seq_len = seq_len
        self.epoch, self.cursor = 0, 0
        self._order_epoch = -1
        self._build_index(0)
        if len(self.starts) < batch_size * world_size:
            raise ColossusError(f"{shards.path} holds {len(self.starts)} windows of {seq_len + 1} tokens, "
                                f"fewer than one batch ({batch_size} x {world_size} ranks)")

    def _build_index(self, epoch: int) -> None:
        L = self.seq_len + 1
        offset = 0 if self.row_len else int(np.random.default_rng([self.seed, epoch, 1]).integers(0, self.seq_len))
        shard_idx, starts = [], []
        for i, arr in enumerate(self.shards.ids):
            n = (len(arr) - offset) // L
            if n > 0:
                shard_idx.append(np.full(n, i, dtype=np.int32))
                starts.append(offset + np.arange(n, dtype=np.int64) * L)
        self.shard_idx = np.concatenate(shard_idx) if shard_idx else np.zeros(0, np.int32)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)

    def _order(self) -> np.ndarray:
        if self._order_epoch != self.epoch:
            self._build_index(self.epoch)
            self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.starts))
            self._order_epoch = self.epoch
        return self.order

    @property
    def windows_per_epoch(self) -> int:
        return len(self.starts)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x, y, w): inputs and targets (B, T) int64, and the targets' loss weights (B, T) float32
        (None when every target counts the same)."""
        step = self.batch_size * self.world_size
        order = self._order()
        if self.cursor + step > len(order):
            self.epoch, self.cursor = self.epoch + 1, 0
            order = self._order()
        lo = self.cursor + self.rank * self.batch_size
        picks = order[lo: lo + self.batch_size]
        self.cursor += step
        L = self.seq_len + 1
        rows = np.stack([self.shards.ids[self.shard_idx[p]][self.starts[p]: self.starts[p] + L] for p in picks])
        rows = torch.from_numpy(rows.astype(np.int64))
        mask = None
        if self.shards.masks:
            m = np.stack([self.shards.masks[self.shard_idx[p]][self.starts[p] + 1: self.starts[p] + L]
                          for p in picks])
            mask = torch.from_numpy(m.astype(np.float32))
        return rows[:, :-1], rows[:, 1:], mask

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor, "seed": self.seed}

    def rewind(self) -> None:
        """Back to the first batch of the first epoch."""
        self.epoch, self.cursor = 0, 0

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ColossusError(f"loader state was saved with seed {state['seed']}, not {self.seed}")
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
