"""Several prompts in one forward pass (kv_pool.BatchPrefillView, the engine's PyTorch path): each row's
logits and keys/values are those of its prompt alone, whatever its length and cached prefix, and the
padding writes nothing."""

from __future__ import annotations

import asyncio

import torch

from colossus.infer.engine import Engine
from colossus.infer.kv_pool import SlotPool
from colossus.infer.sampling import SamplingParams


def test_a_batch_of_prompts_equals_each_prompt_alone(small):
    cfg = small.cfg
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(1, cfg.vocab_size, (n,), generator=g).tolist() for n in (20, 50, 5, 33)]
    starts = [0, 16, 0, 32]  # rows 1 and 3 found a cached prefix: its keys are in the slot already
    first = 2  # the batch's slots are 2..5
    torch.manual_seed(3)
    alone = SlotPool(cfg, 6, cfg.seq_len)
    alone.k.normal_()
    alone.v.normal_()
    batched = SlotPool(cfg, 6, cfg.seq_len)
    with torch.inference_mode():
        for i, (p, s) in enumerate(zip(prompts, starts, strict=True)):
            if s:  # the cached prefix, computed the plain way into the slot of both pools
                small(torch.tensor([p[:s]]), cache=alone.prefill_view(first + i, 0, s), positions=torch.arange(s))
        batched.k.copy_(alone.k)
        batched.v.copy_(alone.v)
        before = batched.k.clone()
        want = torch.cat([small(torch.tensor([p[s:]]), cache=alone.prefill_view(first + i, s, len(p) - s),
                                positions=torch.arange(s, len(p)), last_only=True)[:, -1]
                          for i, (p, s) in enumerate(zip(prompts, starts, strict=True))])
        view = batched.batch_prefill_view(first, prompts, starts)
        got = small(view.tokens, cache=view, positions=view.positions, last_only=True)[:, -1]
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5, rtol=1e-4)
    for i, p in enumerate(prompts):
        n, slot = len(p), first + i
        for a, b in ((batched.k, alone.k), (batched.v, alone.v)):
            assert torch.allclose(a[:, slot, :, :n], b[:, slot, :, :n], atol=1e-5, rtol=1e-4)
        assert torch.equal(batched.k[:, slot, :, n:], before[:, slot, :, n:])  # padding wrote nothing
    assert torch.equal(batched.k[:, :first], before[:, :first])  # nor did any row outside its slot


def test_the_engine_admits_prompts_together_in_one_pass_with_the_same_output(small, tok, monkeypatch):
    passes = []
    real = Engine._prefill_batch
    monkeypatch.setattr(Engine, "_prefill_batch", lambda self, reqs: passes.append(len(reqs)) or real(self, reqs))
    prompts = [[1, *range(10, 10 + n)] for n in (4, 30, 9, 17)]
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    engine = Engine(small, tok, max_batch=4, kernel="torch")
    engine.start()

    async def one(p):
        return [t async for d in engine.generate(p, params) for t in d.token_ids]

    async def together():
        return await asyncio.gather(*(one(p) for p in prompts))

    try:
        alone = [asyncio.run(one(p)) for p in prompts]
        assert passes == []
        both = asyncio.run(together())
    finally:
        engine.shutdown()
    assert passes and max(passes) > 1 and both == alone
