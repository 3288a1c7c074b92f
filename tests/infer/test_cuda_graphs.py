"""Decode steps of fixed shapes (colossus/infer/cuda_graphs.py): padded rows and key lengths give the
logits and KV of the plain decode step. On CPU the static step runs eagerly; on a GPU (skipped without
one) it is replayed from CUDA graphs inside the engine."""

from __future__ import annotations

import asyncio

import pytest
import torch

from colossus.infer.cuda_graphs import DecodeGraphs, batch_sizes, key_lengths
from colossus.infer.engine import Engine
from colossus.infer.kv_pool import SlotPool
from colossus.infer.sampling import SamplingParams
from colossus.model.gpt import GPT


def test_captured_shapes_cover_every_batch_and_length_once():
    assert batch_sizes(32) == [1, 2, 4, 8, 16, 24, 32]
    assert batch_sizes(5) == [1, 2, 4, 5] and batch_sizes(1) == [1] and batch_sizes(12) == [1, 2, 4, 8, 12]
    assert key_lengths(512) == [64, 128, 256, 512] and key_lengths(96) == [64, 96] and key_lengths(64) == [64]


@pytest.mark.parametrize("lengths", [[5], [5, 17, 70], [64, 2, 63], [3, 3, 3, 3, 3, 3, 3, 3], [159, 0]])
def test_the_padded_static_step_equals_the_plain_decode_step(small, lengths):
    """Rows padded up to a captured batch size and keys up to a captured length: the real rows' logits
    and what they write into the pool are the plain step's; padding writes only into free slots."""
    cfg, slots = small.cfg, 8
    torch.manual_seed(1)
    plain = SlotPool(cfg, slots, cfg.seq_len)
    plain.k.normal_()
    plain.v.normal_()
    static = SlotPool(cfg, slots, cfg.seq_len)
    static.k.copy_(plain.k)
    static.v.copy_(plain.v)
    tokens = [(7 * i + 3) % cfg.vocab_size for i in range(len(lengths))]
    with torch.inference_mode():
        view = plain.decode_view(lengths)
        want = small.decode_step(torch.tensor(tokens), view.positions, view)
        graphs = DecodeGraphs(small, static, slots)
        got = graphs.step(tokens, lengths)
    assert len(graphs) == 0  # on CPU nothing is captured
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    B = len(lengths)
    for a, b in ((static.k, plain.k), (static.v, plain.v)):  # within rounding: padded matmuls round their own way
        assert torch.allclose(a[:, :B], b[:, :B], atol=1e-5, rtol=1e-5)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@CUDA
def test_the_engine_on_a_gpu_gives_the_same_tokens_with_graphs_as_op_by_op(small, tok):
    model = GPT(small.cfg).to("cuda").eval()
    model.load_state_dict(small.state_dict())
    prompts = [[1, *range(10, 10 + n)] for n in (4, 30, 9, 60, 2)]
    params = [SamplingParams(temperature=0, max_tokens=m, ignore_eos=True) for m in (90, 20, 50, 70, 5)]

    def run(graphs: bool) -> list[list[int]]:
        engine = Engine(model, tok, max_batch=6, device="cuda", cuda_graphs=graphs)
        assert (engine.graphs is not None) == graphs and (not graphs or len(engine.graphs) > 0)
        engine.start()

        async def one(p, sp, delay):
            await asyncio.sleep(delay)  # they join at different steps, and leave at different ones
            return [t async for d in engine.generate(p, sp) for t in d.token_ids]

        async def all_of_them():
            pairs = enumerate(zip(prompts, params, strict=True))
            return await asyncio.gather(*(one(p, sp, 0.005 * i) for i, (p, sp) in pairs))

        try:
            out = asyncio.run(all_of_them())
            assert engine.stats()["kv_used_tokens"] == 0
            return out
        finally:
            engine.shutdown()

    eager, graphed = run(False), run(True)
    assert [len(x) for x in graphed] == [p.max_tokens for p in params]
    assert graphed == eager
