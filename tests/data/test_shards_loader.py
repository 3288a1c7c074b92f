import numpy as np
import pytest
import torch

from colossus.data.loader import TokenLoader
from colossus.data.shards import Shards, ShardWriter, write_documents, write_packed
from colossus.errors import ColossusError


def docs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(10, 500, size=rng.integers(5, 40))) for _ in range(n)]


def test_documents_roundtrip_across_shards(tmp_path):
    d = docs()
    meta = write_documents(tmp_path, d, vocab_size=512, bos=1, shard_tokens=500)
    assert len(meta["shards"]) > 1
    s = Shards(tmp_path)
    flat = np.concatenate([np.asarray(a) for a in s.ids])
    expected = np.concatenate([[1] + x for x in d])
    assert (flat == expected).all()
    assert s.ids[0].dtype == np.uint16


def test_packed_rows_keep_items_whole(tmp_path):
    items = [([1] + [7] * n, [0] + [1] * n, False) for n in (5, 20, 9, 30, 3, 12)]
    items.append(([1] + [8] * 100, [0] + [1] * 100, True))  # a long document is split
    items.append(([1] + [9] * 100, [0] + [1] * 100, False))  # a long conversation is dropped
    meta = write_packed(tmp_path, items, vocab_size=512, row_len=33, pad_id=0)
    s = Shards(tmp_path)
    rows = np.asarray(s.ids[0]).reshape(-1, 33)
    masks = np.asarray(s.masks[0]).reshape(-1, 33)
    assert meta["dropped_too_long"] == 1
    assert int((rows == 7).sum()) == 5 + 20 + 9 + 30 + 3 + 12
    assert int((rows == 8).sum()) == 100
    assert (masks[rows == 0] == 0).all()  # padding is never a target
    assert (rows == 9).sum() == 0


def test_truncated_shard_is_detected(tmp_path):
    write_documents(tmp_path, docs(), vocab_size=512, bos=1)
    f = tmp_path / "shard_00000.bin"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(ColossusError, match="truncated"):
        Shards(tmp_path)
    with pytest.raises(ColossusError, match="meta.json missing"):
        Shards(tmp_path / "nowhere")


def test_empty_corpus_is_an_error(tmp_path):
    with pytest.raises(ColossusError, match="no tokens"):
        ShardWriter(tmp_path, 512).close()


def test_loader_is_deterministic_and_resumable(tmp_path):
    write_documents(tmp_path, docs(400), vocab_size=512, bos=1)
    a = TokenLoader(Shards(tmp_path), batch_size=4, seq_len=16, seed=3)
    batches = [a.next_batch()[0] for _ in range(50)]  # crosses several epochs
    b = TokenLoader(Shards(tmp_path), batch_size=4, seq_len=16, seed=3)
    for x in batches[:20]:
        assert (b.next_batch()[0] == x).all()
    state = b.state_dict()
    c = TokenLoader(Shards(tmp_path), batch_size=4, seq_len=16, seed=3)
    c.load_state_dict(state)
    for x in batches[20:]:
        assert (c.next_batch()[0] == x).all()
    d = TokenLoader(Shards(tmp_path), batch_size=4, seq_len=16, seed=4)
    assert not (d.next_batch()[0] == batches[0]).all()


def test_targets_are_inputs_shifted(tmp_path):
    write_documents(tmp_path, docs(), vocab_size=512, bos=1)
    x, y, m = TokenLoader(Shards(tmp_path), batch_size=2, seq_len=16).next_batch()
    assert x.shape == y.shape == (2, 16) and m is None
    assert (x[:, 1:] == y[:, :-1]).all()


def test_ranks_split_each_step_without_overlap(tmp_path):
    write_documents(tmp_path, docs(400), vocab_size=512, bos=1)
    whole = TokenLoader(Shards(tmp_path), batch_size=4, seq_len=16, seed=1, rank=0, world_size=1)
    r0 = TokenLoader(Shards(tmp_path), batch_size=2, seq_len=16, seed=1, rank=0, world_size=2)
    r1 = TokenLoader(Shards(tmp_path), batch_size=2, seq_len=16, seed=1, rank=1, world_size=2)
    for _ in range(5):
        full = whole.next_batch()[0]
        assert (full[:2] == r0.next_batch()[0]).all() and (full[2:] == r1.next_batch()[0]).all()


def test_packed_loader_masks_targets(tmp_path):
    items = [([1, 5, 6, 7], [0, 0, 1, 1], False)] * 40
    write_packed(tmp_path, items, vocab_size=512, row_len=17, pad_id=0)
    x, y, m = TokenLoader(Shards(tmp_path), batch_size=2, seq_len=16).next_batch()
    assert m is not None and m.shape == y.shape
    assert set(y[m > 0].tolist()) <= {6, 7} and m.dtype == torch.float32
    with pytest.raises(ColossusError, match="seq_len must be 16"):
        TokenLoader(Shards(tmp_path), batch_size=2, seq_len=32)
