import torch

from colossus.infer.kv_pool import SlotPool
from colossus.infer.prefix_cache import PrefixCache
from colossus.model.config import ModelConfig

CFG = ModelConfig(vocab_size=64, seq_len=64, n_layer=2, d_model=16, n_head=2, n_kv_head=1)


def pool_with(slot_values: list[float]) -> SlotPool:
    """A pool whose slot s holds, at token position t, the value slot_values[s] * 1000 + t."""
    pool = SlotPool(CFG, len(slot_values), 64)
    t = torch.arange(64, dtype=torch.float32)[None, None, :, None]
    for s, base in enumerate(slot_values):
        pool.k[:, s] = base * 1000 + t
        pool.v[:, s] = -(base * 1000 + t)
    return pool


def test_blocks_round_trip_into_another_slot():
    pool = pool_with([1.0, 0.0])
    cache = PrefixCache(CFG, capacity_tokens=64, block=4)
    ids = list(range(10))
    cache.store(ids, pool, slot=0)  # 2 full blocks: tokens 0..7
    assert cache.tokens == 8
    blocks = cache.match(ids, limit=9)
    assert len(blocks) == 2 and cache.load(blocks, pool, slot=1) == 8
    assert torch.equal(pool.k[:, 1, :, :8], pool.k[:, 0, :, :8])
    assert torch.equal(pool.v[:, 1, :, :8], pool.v[:, 0, :, :8])
    assert pool.k[0, 1, 0, 8, 0] == 8  # past the match the slot is untouched


def test_match_needs_the_whole_prefix_and_respects_the_limit():
    pool = pool_with([1.0])
    cache = PrefixCache(CFG, capacity_tokens=64, block=4)
    cache.store([1, 2, 3, 4, 5, 6, 7, 8], pool, 0)
    assert len(cache.match([1, 2, 3, 4, 5, 6, 7, 8, 9], limit=8)) == 2
    assert len(cache.match([1, 2, 3, 4, 5, 6, 7, 8], limit=7)) == 1  # the last prompt token is always computed
    assert cache.match([9, 2, 3, 4, 5, 6, 7, 8], limit=8) == []
    assert cache.match([0, 0, 0, 0, 5, 6, 7, 8], limit=8) == []  # same second block, other parent: no hit


def test_capacity_is_bounded_and_the_least_recently_used_goes_first():
    pool = pool_with([1.0])
    cache = PrefixCache(CFG, capacity_tokens=12, block=4)  # 3 blocks
    a, b = [1, 1, 1, 1, 2, 2, 2, 2], [3, 3, 3, 3]
    cache.store(a, pool, 0)
    cache.store(b, pool, 0)
    assert cache.tokens == 12
    cache.match(a, limit=8)  # a is now the most recent
    cache.store([4, 4, 4, 4], pool, 0)
    assert cache.tokens == 12
    assert cache.match(b, limit=4) == [] and len(cache.match(a, limit=8)) == 2
    cache.store([5, 5, 5, 5, 6, 6, 6, 6], pool, 0)  # evicts a's leaf before its root
    assert len(cache.match(a, limit=8)) == 1


def test_zero_capacity_stores_nothing():
    cache = PrefixCache(CFG, capacity_tokens=0, block=4)
    cache.store(list(range(8)), pool_with([1.0]), 0)
    assert cache.tokens == 0 and cache.match(list(range(8)), 8) == []
