"""The copy head (colossus.model.copy_head): its follow ids by definition, the same logits on every path that
computes them (forward, a KV cache a token at a time, the engine's decode step, the C step, the engine), that
it learns to copy strings it never saw in a few dozen steps where the same model without it does not, and
that the exporters refuse it."""

from __future__ import annotations

import asyncio

import pytest
import torch
import torch.nn.functional as F

from colossus.errors import ColossusError
from colossus.evals.copying import copy_halves, written_twice
from colossus.infer.cpu_decode import CpuDecoder, load_kernel
from colossus.infer.engine import Engine
from colossus.infer.generate import generate_batch, stream
from colossus.infer.kv_pool import SlotPool
from colossus.infer.sampling import SamplingParams
from colossus.model.config import ModelConfig
from colossus.model.copy_head import NONE, FollowMap, follow_ids
from colossus.model.export_hf import check_exportable
from colossus.model.gpt import GPT
from colossus.model.kv_cache import KVCache
from colossus.train.optim import build_optimizers


def by_definition(row: list[int]) -> list[list[int]]:
    """Each position's follow tokens, read off the module's docstring: after the latest earlier occurrence of the
    token, after its first occurrence, after the latest earlier occurrence of the pair ending at it, after the
    second latest earlier occurrence of the token."""
    out = []
    for t, tok in enumerate(row):
        same = [j for j in range(t) if row[j] == tok]
        pair = [j for j in range(1, t) if t > 0 and (row[j - 1], row[j]) == (row[t - 1], tok)]
        out.append([row[same[-1] + 1] if same else NONE, row[same[0] + 1] if same else NONE,
                    row[pair[-1] + 1] if pair else NONE, row[same[-2] + 1] if len(same) > 1 else NONE])
    return out


def test_follow_ids_are_the_token_after_the_last_earlier_occurrence():
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 6, (4, 40), generator=g)  # a small alphabet: many repeats
    got = follow_ids(idx)
    for r in range(4):
        row = idx[r].tolist()
        assert got[r].tolist() == by_definition(row)
        m = FollowMap()  # the same, fed in pieces
        fed = m.extend(row[:9]) + m.extend(row[9:10]) + m.extend(row[10:])
        assert [list(f) for f in fed] == by_definition(row)
    n = NONE
    assert follow_ids(torch.tensor([[5, 7, 5, 5, 9, 5]])).tolist() == [[
        [n, n, n, n], [n, n, n, n], [7, 7, n, n], [5, 7, n, 7], [n, n, n, n], [9, 7, n, 5]]]
    assert follow_ids(torch.tensor([[3]])).tolist() == [[[n, n, n, n]]]


def random_model(vocab: int = 300, seq_len: int = 64) -> GPT:
    """Every weight random, the gate's too (zero at init, it would hide a path that drops it)."""
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=vocab, seq_len=seq_len, n_layer=2, d_model=64, n_head=4, n_kv_head=2,
                        copy_head=True))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
        m.copy_gate.weight.normal_(0, 1.0)
        m.copy_gate.bias.fill_(3.0)  # bonuses that move the greedy token where a follow id exists
    return m.eval()


def test_each_gate_moves_the_logit_of_its_follow_token_only():
    m = random_model()
    idx = torch.tensor([[10, 11, 10, 11, 10, 12]])
    with torch.no_grad():
        m.copy_gate.weight.zero_()
        m.copy_gate.bias.copy_(torch.tensor([1.0, 2.0, 4.0, 8.0]))  # latest, first, pair, second latest
        x = m(idx)
        m.copy_gate.bias.zero_()
        plain = m(idx)
    diff = (x - plain)[0]
    assert torch.count_nonzero(diff[:2]) == 0  # no earlier occurrence
    assert diff[2, 11] == pytest.approx(3.0) and torch.count_nonzero(diff[2]) == 1  # 10 was followed by 11
    assert diff[3, 10] == pytest.approx(7.0) and torch.count_nonzero(diff[3]) == 1  # 11, and (10, 11), by 10
    assert diff[4, 11] == pytest.approx(15.0) and torch.count_nonzero(diff[4]) == 1  # 10 twice before, (11, 10)
    assert torch.count_nonzero(diff[5]) == 0  # 12 is new


def test_a_kv_cache_a_token_at_a_time_gives_the_full_forwards_logits():
    m = random_model()
    idx = torch.randint(0, 30, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = m(idx)
        cache = KVCache(m.cfg, 2, 64)
        parts = [m(idx[:, :17], cache=cache)] + [m(idx[:, t:t + 1], cache=cache) for t in range(17, 40)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-4)


def test_decode_step_and_the_c_step_give_the_forwards_logits_with_the_gate():
    m = random_model()
    idx = torch.randint(0, 30, (1, 40), generator=torch.Generator().manual_seed(2))
    fol = follow_ids(idx)
    with torch.inference_mode():
        full = m(idx)[0]
        pool = SlotPool(m.cfg, 2, 64)
        m(idx[:, :20], cache=pool.prefill_view(0, 0, 20), positions=torch.arange(20), follow=fol[:, :20])
        for t in range(20, 40):
            view = pool.decode_view([t])
            got = m.decode_step(idx[0, t:t + 1], view.positions, view, follow=fol[0, t:t + 1])
            assert torch.allclose(got[0], full[t], atol=1e-4)
        with pytest.raises(ValueError, match="follow"):
            m.decode_step(idx[0, :1], pool.decode_view([40]).positions, pool.decode_view([40]))
        if load_kernel() is None:
            return
        c = CpuDecoder.create(m, SlotPool(m.cfg, 2, 64))
        follow = [tuple(f) for f in fol[0].tolist()]
        out = c.step(idx[0].tolist(), list(range(40)), [0] * 40, list(range(40)), follow=follow)
    assert out.shape == full.shape and torch.allclose(out, full, atol=1e-4)


@pytest.mark.parametrize("kernel", [
    pytest.param("c", marks=pytest.mark.skipif(load_kernel() is None, reason="no C compiler")), "torch"])
def test_the_engine_generates_what_a_plain_kv_cache_does(tok, kernel):
    m = random_model(tok.vocab_size, 128)
    prompts = [[1, 40, 41, 42, 40, 41], [1, 50, 60, 50], [1, *range(100, 120), 100]]
    params = SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)
    want = [[t for t, _ in stream(m, p, params, set())] for p in prompts]
    assert [c.ids for c in generate_batch(m, prompts, 20, set())] == want
    engine = Engine(m, tok, max_batch=4, kernel=kernel, prefix_cache_tokens=256)
    engine.start()

    async def one(p):
        return [t for d in [d async for d in engine.generate(p, params)] for t in d.token_ids]

    async def every():  # together (batched) and then again (the prefix cache holds their prompts)
        return await asyncio.gather(*(one(p) for p in prompts)), [await one(p) for p in prompts]

    try:
        batched, again = asyncio.run(every())
    finally:
        engine.shutdown()
    assert batched == want and again == want
    assert any(t in p for w, p in zip(want, prompts, strict=True) for t in w)  # the bonus made it copy


def train_copying(copy_head: bool, steps: int) -> float:
    """A fresh 2-layer model trained on strings written twice (lengths 6-12, 500 symbols) -> its loss on the
    second copy of held-out strings of length 24, a length it never saw."""
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=512, seq_len=49, n_layer=2, d_model=64, n_head=2, n_kv_head=2,
                        copy_head=copy_head))
    opts = build_optimizers(m, lr=3e-3, embed_lr=1e-2, head_lr=3e-3, weight_decay=0.0, muon=True, muon_lr=0.02)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        n = int(torch.randint(6, 13, (1,), generator=g))
        x = written_twice(torch.randint(12, 512, (16, n), generator=g), 0)
        m(x[:, :-1], x[:, 1:]).backward()
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
    x = written_twice(torch.randint(12, 512, (32, 24), generator=torch.Generator().manual_seed(2)), 0)
    with torch.no_grad():
        loss = F.cross_entropy(m(x[:, :-1]).transpose(1, 2), x[:, 1:], reduction="none")
    return copy_halves(loss, 24)[1].mean().item()


def test_it_learns_to_copy_held_out_strings_where_the_plain_model_does_not():
    with_head, without = train_copying(True, 60), train_copying(False, 60)
    assert with_head < 1.0  # nats on the second copy; ln 500 = 6.2 is not copying at all
    assert without > 5.0


def test_the_exporters_refuse_a_copy_head():
    cfg = ModelConfig(vocab_size=64, seq_len=16, n_layer=1, d_model=32, n_head=2, n_kv_head=2, copy_head=True)
    for gguf in (False, True):
        with pytest.raises(ColossusError, match="copy_head"):
            check_exportable(cfg, gguf=gguf)


def test_the_decode_graphs_pass_each_rows_follow_id():
    from colossus.infer.cuda_graphs import DecodeGraphs  # on CPU it runs decode_step without capturing

    m = random_model()
    idx = torch.randint(0, 30, (2, 30), generator=torch.Generator().manual_seed(3))
    fol = follow_ids(idx)
    with torch.inference_mode():
        full = m(idx)
        pool = SlotPool(m.cfg, 4, 64)
        graphs = DecodeGraphs(m, pool, 4)
        for r in range(2):
            m(idx[r:r + 1, :20], cache=pool.prefill_view(r, 0, 20), positions=torch.arange(20),
              follow=fol[r:r + 1, :20])
        got = graphs.step(idx[:, 20].tolist(), [20, 20], [tuple(f) for f in fol[:, 20].tolist()])
    assert torch.allclose(got, full[:, 20], atol=1e-4)


def test_the_speedruns_setting_reaches_the_model_and_a_saved_model_keeps_its_gates(tmp_path, tok):
    from colossus.config import load_config
    from colossus.model.io import load_model, save_model
    from colossus.speedrun import model_config

    cfg = model_config(load_config("tiny", overrides=["model.copy_head=true"]), tok)
    assert cfg.copy_head and not model_config(load_config("tiny"), tok).copy_head
    m = random_model()
    back = load_model(save_model(tmp_path / "m", m))
    idx = torch.tensor([[10, 11, 12, 10, 11, 13, 10]])
    assert back.cfg.copy_head and torch.equal(back.copy_gate.bias, m.copy_gate.bias)
    with torch.no_grad():
        assert torch.equal(back(idx), m(idx))
