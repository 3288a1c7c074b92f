"""Which forward path the engine takes per step on CPU: step times measured once per machine and model
shape, cached beside the compiled kernel, read back on the next start; the faster path by a margin wins;
--kernel c|torch force one. Timing is never asserted: the tests give the engine times to follow."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import torch

from colossus.infer import cpu_decode
from colossus.infer.cpu_decode import load_kernel
from colossus.infer.engine import Engine
from colossus.infer.sampling import SamplingParams
from colossus.infer.step_choice import MARGIN, StepTimes, decode_points, prompt_points
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT

needs_c = pytest.mark.skipif(load_kernel() is None, reason="no C compiler on this machine")
GREEDY = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)


def times(c_decode, t_decode, c_prompt=(1.0, 4.0), t_prompt=(2.0, 8.0), rows=None, prompts=(16, 64)) -> StepTimes:
    rows = rows or [2**i for i in range(len(c_decode))]
    return StepTimes(list(rows), {"c": list(c_decode), "torch": list(t_decode)}, list(prompts),
                     {"c": list(c_prompt), "torch": list(t_prompt)})


def test_points_cover_every_batch_and_prompt_size_up_to_the_limit():
    assert decode_points(1) == [1]
    assert decode_points(32) == [1, 2, 4, 8, 16, 32]
    assert decode_points(24) == [1, 2, 4, 8, 16, 24]
    assert prompt_points(512) == [16, 64, 256, 512]
    assert prompt_points(64) == [16, 64]


def test_a_step_is_estimated_from_the_points_around_it():
    t = times([1.0, 2.0, 4.0], [3.0, 3.0, 3.0])  # rows 1, 2, 4
    assert t.estimate("c", 2, 0) == 2.0  # a measured point
    assert t.estimate("c", 3, 0) == pytest.approx(3.0)  # between 2 and 4: linear
    assert t.estimate("c", 8, 0) == pytest.approx(8.0)  # beyond the last: proportional
    assert t.estimate("c", 0, 32) == pytest.approx(1.0 + 3.0 * 16 / 48)  # prompt tokens between 16 and 64
    assert t.estimate("c", 0, 8) == pytest.approx(0.5)  # below the first: proportional
    assert t.estimate("torch", 4, 64) == pytest.approx(3.0 + 8.0)  # decode rows and a prompt: both paths' parts


def test_pytorch_ops_are_taken_only_where_they_are_faster_by_the_margin():
    just_inside = 1 - MARGIN - 0.01
    t = times([1.0, 1.0, 1.0], [2.0, 1.0 - MARGIN / 2, just_inside])
    assert t.use_c(1) and t.use_c(2)  # 2: faster, but by less than the margin
    assert not t.use_c(4)
    assert t.use_c(1, 16)  # the C step's prompt times are the lower ones
    s = t.summary()
    assert "decode rows 1, 2, 4: the C step at 1, 2, PyTorch ops at 4" in s
    assert "prompt tokens 16, 64: the C step" in s and "2.00x" in s


def test_a_table_round_trips_and_a_bad_one_is_refused():
    t = times([1.0, 2.0], [3.0, 4.0])
    assert StepTimes.from_json(json.loads(json.dumps(t.to_json()))) == t
    bad = t.to_json()
    bad["decode"]["c"] = [1.0]
    with pytest.raises(ValueError, match="one time per point"):
        StepTimes.from_json(bad)
    bad = t.to_json()
    bad["prompt"]["torch"] = [0.0, 1.0]
    with pytest.raises(ValueError, match="not positive"):
        StepTimes.from_json(bad)


def test_measuring_times_both_paths_at_every_point_interleaved(tmp_path):
    calls = []

    def run(path, rows, prompt):
        calls.append((path, rows, prompt))
        return (1.0 if path == "c" else 2.0) * (rows + prompt)

    path = tmp_path / "t.json"
    t = StepTimes.load_or_measure(path, run, max_batch=4, max_prompt=64)
    assert t.decode_rows == [1, 2, 4] and t.prompt_tokens == [16, 64]
    assert t.decode == {"c": [1.0, 2.0, 4.0], "torch": [2.0, 4.0, 8.0]}
    assert calls[:4] == [("c", 1, 0), ("torch", 1, 0), ("c", 1, 0), ("torch", 1, 0)]  # warm-up, then in turn
    assert StepTimes.from_json(json.loads(path.read_text())) == t
    calls.clear()
    assert StepTimes.load_or_measure(path, run, 4, 64) == t and not calls  # cached: nothing timed again
    path.write_text("{not json")
    assert StepTimes.load_or_measure(path, run, 4, 64) == t and calls  # unreadable: timed again, rewritten
    assert StepTimes.from_json(json.loads(path.read_text())) == t


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    """A machine that has never built the kernel: its cache is empty."""
    monkeypatch.setenv("COLOSSUS_CACHE", str(tmp_path))
    monkeypatch.setattr(cpu_decode, "_kernels", {})
    return tmp_path / "kernels"


def engine_model(tok) -> GPT:
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=tok.vocab_size, seq_len=64, n_layer=2, d_model=32, n_head=2, n_kv_head=1))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m.eval()


async def replies(engine: Engine, prompts: list[list[int]]) -> list[list[int]]:
    async def one(i, p):  # the last two run on alone: steps of 6 rows, then of 2
        params = GREEDY if i < len(prompts) - 2 else SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
        return [t for d in [d async for d in engine.generate(p, params)] for t in d.token_ids]
    return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))


def serve(engine: Engine, prompts: list[list[int]]) -> list[list[int]]:
    engine.start()
    try:
        return asyncio.run(replies(engine, prompts))
    finally:
        engine.shutdown()


@needs_c
def test_the_engine_times_both_paths_once_and_follows_the_table(tok, fresh_cache, caplog):
    caplog.set_level(logging.INFO, logger="colossus")
    model = engine_model(tok)
    first = Engine(model, tok, max_batch=8)
    assert first.kernel == "auto" and first.step_times is not None
    [table] = fresh_cache.glob("cpu_decode-*-steps-*.json")  # beside the library it timed
    assert table.with_name(table.name.split("-steps-")[0] + ".so").exists()
    assert "timed the C step and PyTorch ops" in caplog.text and "forward path by step size" in caplog.text

    # The same machine tells the next engine that PyTorch ops are twice as fast from 4 rows on and for every
    # prompt: it reads the table, times nothing, and takes PyTorch ops for those steps.
    saved = StepTimes.from_json(json.loads(table.read_text()))
    assert saved.decode_rows == [1, 2, 4, 8] and saved.prompt_tokens == [16, 64]
    c = saved.decode["c"]
    torch_faster = times(c, [c[0] * 2, c[1] * 2, c[2] / 2, c[3] / 2], saved.prompt["c"],
                         [s / 2 for s in saved.prompt["c"]], rows=saved.decode_rows)
    table.write_text(json.dumps(torch_faster.to_json()))
    caplog.clear()
    engine = Engine(model, tok, max_batch=8)
    assert "timed the C step" not in caplog.text
    assert "decode rows 1, 2, 4, 8: the C step at 1, 2, PyTorch ops at 4, 8" in caplog.text
    prompts = [[5 + i, 17, 3 + i, 9] for i in range(6)]
    got = serve(engine, prompts)
    stats = engine.stats()
    assert stats["torch_steps_total"] >= 1 and stats["c_steps_total"] >= 1  # 2 rows: the C step; 6: PyTorch
    assert stats["c_steps_total"] + stats["torch_steps_total"] == stats["steps_total"]
    # the two paths compute the same model: the replies are those of the C step alone
    assert got == serve(Engine(model, tok, max_batch=8, kernel="c"), prompts)


@needs_c
@pytest.mark.parametrize("kernel", ["c", "torch"])
def test_a_forced_path_times_nothing_and_takes_every_step(tok, fresh_cache, kernel):
    engine = Engine(engine_model(tok), tok, max_batch=4, kernel=kernel)
    assert engine.kernel == kernel and engine.step_times is None
    assert not list(fresh_cache.glob("*-steps-*.json"))
    serve(engine, [[5, 6, 7], [8, 9]])
    stats = engine.stats()
    assert stats[f"{kernel}_steps_total"] == stats["steps_total"] > 0
