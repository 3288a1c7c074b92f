"""Decode steps replayed from CUDA graphs.

On a GPU, a small model's decode step is a hundred-odd kernels of a few microseconds each, and
launching them one by one from Python costs more than running them: on an H100, an 8.7M-parameter
model took 4 ms a step that way, slower than two CPU cores. A CUDA graph launches the whole step at
once. A graph fixes every shape and address, so the step is captured at start for a few batch sizes
and key lengths, reading its inputs from static buffers:

- rows are padded up to the next captured batch size; a padding row decodes token 0 at position 0 of a
  free slot (running requests hold slots 0..B-1, so slots B.. are free during a decode step; whatever
  it writes there is overwritten when a request takes the slot);
- attention reads each slot up to the next captured key length (powers of two from 64, and the
  context), masked past each row's own position, so a row sees exactly the keys it would see eagerly.

The logits land in one static buffer, read before the next step replays a graph. On a CPU there is
nothing to capture: the same padded, static step runs eagerly (what the tests check on machines
without a GPU).
"""

from __future__ import annotations

import torch

from colossus.infer.kv_pool import DecodeView, SlotPool
from colossus.model.copy_head import NONE, POINTERS
from colossus.model.gpt import GPT

MIN_KEYS = 64  # the shortest key length captured


def batch_sizes(max_batch: int) -> list[int]:
    """1, 2, 4, 8, then every multiple of 8, up to max_batch (included)."""
    sizes = [b for b in (1, 2, 4) if b < max_batch] + list(range(8, max_batch, 8))
    return sizes + [max_batch]


def key_lengths(max_len: int) -> list[int]:
    """Powers of two from MIN_KEYS below max_len, then max_len."""
    out, n = [], MIN_KEYS
    while n < max_len:
        out.append(n)
        n *= 2
    return out + [max_len]


class DecodeGraphs:
    """model.decode_step for up to max_batch rows of `pool`, one graph per (batch size, key length).

    Capture writes into slots 0..max_batch-1 of the pool: make it before any request holds a slot."""

    def __init__(self, model: GPT, pool: SlotPool, max_batch: int):
        self.model, self.pool = model, pool
        self.batches, self.keys = batch_sizes(max_batch), key_lengths(pool.max_len)
        dev = pool.device
        self.capture = dev.type == "cuda"
        rows = 2 + POINTERS  # token ids, positions, then the copy head's follow ids
        self.inputs = torch.zeros(rows, max_batch, dtype=torch.long, device=dev)
        self.host = torch.zeros(rows, max_batch, dtype=torch.long, pin_memory=self.capture)
        self.logits = torch.zeros(max_batch, model.cfg.vocab_size, device=dev)
        self.graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self._copied = torch.cuda.Event() if self.capture else None  # the last input copy, done reading host
        if self.capture:
            self._capture_all()

    def _run(self, b: int, keys: int) -> None:
        positions = self.inputs[1, :b]
        view = DecodeView.fixed(self.pool, positions, keys)
        follow = self.inputs[2:, :b].t() if self.model.cfg.copy_head else None
        self.logits[:b] = self.model.decode_step(self.inputs[0, :b], positions, view, max_position=keys - 1,
                                                 follow=follow)

    def _capture_all(self) -> None:
        mempool = torch.cuda.graph_pool_handle()  # one pool: the graphs never run at the same time
        side = torch.cuda.Stream(self.pool.device)
        side.wait_stream(torch.cuda.current_stream(self.pool.device))
        with torch.cuda.stream(side):  # warm-up off the capturing stream: packed weights, kernels' workspaces
            self._run(self.batches[-1], self.keys[-1])
        torch.cuda.current_stream(self.pool.device).wait_stream(side)
        for b in reversed(self.batches):  # largest first: later captures reuse its memory
            for keys in reversed(self.keys):
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, pool=mempool):
                    self._run(b, keys)
                self.graphs[b, keys] = g
        torch.cuda.synchronize(self.pool.device)

    def __len__(self) -> int:
        return len(self.graphs)

    def step(self, tokens: list[int], positions: list[int], follow: list[tuple] | None = None) -> torch.Tensor:
        """Logits (B, V) of one token per row, row i in slot i at positions[i] (follow: the rows' follow ids, for
        a copy head); a view of the static buffer, valid until the next step."""
        B = len(tokens)
        b = next(x for x in self.batches if x >= B)
        top = max(positions)
        keys = next(x for x in self.keys if x > top)
        if self.capture:
            self._copied.synchronize()  # (at once in the engine: it read the last step's tokens back already)
        self.host[:, :b] = 0  # padding rows: token 0 at position 0
        self.host[2:, :b] = NONE
        self.host[0, :B] = torch.tensor(tokens)
        self.host[1, :B] = torch.tensor(positions)
        if follow is not None:
            self.host[2:, :B] = torch.tensor(follow).t()
        self.inputs[:, :b].copy_(self.host[:, :b], non_blocking=self.capture)
        if self.capture:
            self._copied.record()
            self.graphs[b, keys].replay()
        else:
            self._run(b, keys)
        return self.logits[:B]
