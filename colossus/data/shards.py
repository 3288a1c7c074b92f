"""Token shards on disk: flat arrays of token ids (numpy memmap), with an optional loss mask.

    DIR/meta.json           dtype, shards and their token counts, row length when packed
    DIR/shard_00000.bin     token ids
    DIR/shard_00000.mask    uint8 loss weight of each token as a target (0: not trained; chat data only)

Documents are written one after another, each opened by <|bos|>, as a stream that the loader cuts
into windows. Packed shards instead hold rows of a fixed length, filled first-fit with whole items
(padded at the end), so no conversation is cut in two; a document longer than a row is split. Files are
written under a temporary name and renamed, and meta.json is written last: a crash never leaves a
directory that looks complete."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from colossus.errors import ColossusError


class ShardWriter:
    def __init__(self, out: str | Path, vocab_size: int, shard_tokens: int = 1 << 24,
                 with_mask: bool = False, row_len: int | None = None, pad_id: int = 0):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.dtype = np.uint16 if vocab_size <= 65536 else np.uint32
        self.vocab_size, self.shard_tokens = vocab_size, shard_tokens
        self.with_mask, self.row_len, self.pad_id = with_mask, row_len, pad_id
        if row_len:  # a shard holds whole rows
            self.shard_tokens = max(row_len, shard_tokens // row_len * row_len)
        self.ids: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.buffered = 0
        self.shards: list[dict] = []
        self.open_rows: list[tuple[list[int], list[int]]] = []  # rows still being filled
        self.max_open = 8
        self.dropped = 0

    def add(self, ids: list[int], mask: list[int] | None = None, splittable: bool = False) -> None:
        """Add one item. In packed shards an item longer than a row is split into rows when
        splittable (a document), and dropped otherwise (a conversation)."""
        if self.with_mask and mask is None:
            mask = [1] * len(ids)
        if not self.row_len:
            self._append(ids, mask)
        elif len(ids) <= self.row_len:
            self._add_packed(ids, mask)
        elif splittable:
            for i in range(0, len(ids), self.row_len):
                self._add_packed(ids[i: i + self.row_len], mask[i: i + self.row_len])
        else:
            self.dropped += 1

    def _add_packed(self, ids: list[int], mask: list[int]) -> None:
        for row_ids, row_mask in self.open_rows:  # first fit
            if len(row_ids) + len(ids) <= self.row_len:
                row_ids += ids
                row_mask += mask
                break
        else:
            if len(self.open_rows) == self.max_open:
                self._close_row(0)
            self.open_rows.append((list(ids), list(mask)))
        for i in reversed(range(len(self.open_rows))):
            if len(self.open_rows[i][0]) == self.row_len:
                self._close_row(i)

    def _close_row(self, i: int) -> None:
        row_ids, row_mask = self.open_rows.pop(i)
        pad = self.row_len - len(row_ids)
        self._append(row_ids + [self.pad_id] * pad, row_mask + [0] * pad)

    def _append(self, ids: list[int], mask: list[int] | None) -> None:
        self.ids.append(np.asarray(ids, dtype=self.dtype))
        if self.with_mask:
            self.masks.append(np.asarray(mask, dtype=np.uint8))
        self.buffered += len(ids)
        if self.buffered >= self.shard_tokens:
            self._flush(self.shard_tokens)

    def _flush(self, n: int | None = None) -> None:
        ids = np.concatenate(self.ids) if self.ids else np.zeros(0, self.dtype)
        masks = np.concatenate(self.masks) if self.masks else None
        n = len(ids) if n is None else n
        if n == 0:
            return
        name = f"shard_{len(self.shards):05d}"
        _atomic_write(self.out / f"{name}.bin", ids[:n].tobytes())
        if masks is not None:
            _atomic_write(self.out / f"{name}.mask", masks[:n].tobytes())
        self.shards.append({"name": name, "tokens": int(n)})
        self.ids, self.masks = [ids[n:]], ([masks[n:]] if masks is not None else [])
        self.buffered = len(ids) - n

    def close(self) -> dict:
        while self.open_rows:
            self._close_row(0)
        self._flush()
        if not self.shards:
            raise ColossusError(f"no tokens were written to {self.out}: is the corpus empty?")
        meta = {"dtype": np.dtype(self.dtype).name, "vocab_size": self.vocab_size, "shards": self.shards,
                "tokens": sum(s["tokens"] for s in self.shards), "has_mask": self.with_mask,
                "row_len": self.row_len, "dropped_too_long": self.dropped}
        _atomic_write(self.out / "meta.json", (json.dumps(meta, indent=2) + "\n").encode())
        return meta


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_documents(out: str | Path, docs: Iterable[list[int]], vocab_size: int, bos: int,
                    shard_tokens: int = 1 << 24) -> dict:
    w = ShardWriter(out, vocab_size, shard_tokens)
    for ids in docs:
        w.add([bos] + ids)
    return w.close()


def write_packed(out: str | Path, items: Iterable[tuple[list[int], list[int], bool]], vocab_size: int,
                 row_len: int, pad_id: int, shard_tokens: int = 1 << 24) -> dict:
    """items: (ids, mask, splittable)."""
    w = ShardWriter(out, vocab_size, shard_tokens, with_mask=True, row_len=row_len, pad_id=pad_id)
    for ids, mask, splittable in items:
        w.add(ids, mask, splittable)
    return w.close()


class Shards:
    """Read-only view of a shard directory: the token stream and its mask, memory-mapped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.meta = json.loads((self.path / "meta.json").read_text())
        except FileNotFoundError as e:
            raise ColossusError(f"no token shards at {self.path} (meta.json missing)") from e
        except json.JSONDecodeError as e:
            raise ColossusError(f"{self.path}/meta.json is corrupt: {e}") from e
        dtype = np.dtype(self.meta["dtype"])
        self.ids, self.masks = [], []
        for s in self.meta["shards"]:
            f = self.path / f"{s['name']}.bin"
            if not f.exists() or f.stat().st_size != s["tokens"] * dtype.itemsize:
                raise ColossusError(f"shard {f} is missing or truncated: rebuild the shards")
            self.ids.append(np.memmap(f, dtype=dtype, mode="r"))
            if self.meta["has_mask"]:
                self.masks.append(np.memmap(self.path / f"{s['name']}.mask", dtype=np.uint8, mode="r"))
        self.row_len: int | None = self.meta.get("row_len")
        self.tokens: int = self.meta["tokens"]
