import json

import numpy as np
import pytest
import torch

from colossus.data.loader import TokenLoader
from colossus.data.shards import write_documents
from colossus.errors import ColossusError
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.model.io import load_weights
from colossus.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from colossus.train.config import TrainConfig
from colossus.train.optim import build_optimizers
from colossus.train.trainer import train

CFG = ModelConfig(vocab_size=64, seq_len=16, n_layer=2, d_model=32, n_head=2, n_kv_head=1)


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    # a learnable stream: each document counts upwards from a random start
    docs = [[int(s + i) % 60 + 2 for i in range(30)] for s in rng.integers(0, 60, 300)]
    write_documents(tmp_path / "shards", docs, vocab_size=64, bos=1)
    return tmp_path / "shards"


def tcfg(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 12, "batch_size": 4, "warmup_steps": 2, "log_every": 2, "eval_every": 0,
                          "ckpt_every": 4, "device": "cpu", "dtype": "fp32", **kw})


def weights(stage) -> dict:
    m = GPT(CFG)
    load_weights(latest_checkpoint(stage) / "model.safetensors", m)
    return m.state_dict()


@pytest.mark.parametrize("muon", [False, True])
def test_loss_goes_down_and_metrics_are_logged(tmp_path, shards, muon):
    s = train(tmp_path / "run", CFG, tcfg(steps=40, lr=1e-2, muon=muon), shards)
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.7 * losses[0]
    assert {"step", "loss", "tokens_per_s", "mfu", "eta_s", "lr"} <= set(rows[-1])
    assert s["steps"] == 40 and s["tokens_per_second"] > 0


def fail_on_batch(monkeypatch, n: int, exc: type[BaseException]) -> None:
    """Make the loader raise exc when asked for its n-th batch."""
    real = TokenLoader.next_batch
    calls = {"n": 0}

    def next_batch(self):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc("injected")
        return real(self)

    monkeypatch.setattr(TokenLoader, "next_batch", next_batch)


@pytest.mark.parametrize("exc,resumes_at", [(RuntimeError, 8), (KeyboardInterrupt, 9)])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, shards, monkeypatch, exc, resumes_at):
    """A crash during step 10 resumes from the periodic checkpoint at step 8; Ctrl-C saves step 9."""
    train(tmp_path / "straight", CFG, tcfg(), shards)
    with monkeypatch.context() as mp:
        fail_on_batch(mp, 10, exc)
        with pytest.raises(exc):
            train(tmp_path / "split", CFG, tcfg(), shards)
    assert latest_checkpoint(tmp_path / "split").name == f"step_{resumes_at:06d}"
    train(tmp_path / "split", CFG, tcfg(), shards, resume=True)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "split")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    rows = (tmp_path / "split/metrics.jsonl").read_text().splitlines()
    steps = [json.loads(r)["step"] for r in rows]
    assert steps == sorted(steps) and len(steps) == len(set(steps))


def test_checkpoint_is_atomic_and_pruned(tmp_path):
    m = GPT(CFG)
    opts = build_optimizers(m, 1e-3, 1e-2, 1e-3, 0.0)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, m, opts, {"loader": {"epoch": 0, "cursor": step}}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step_000002", "step_000003"]
    # a crash mid-write leaves a temporary directory that is never taken for a checkpoint
    (tmp_path / "checkpoints/.step_000004.tmp-99").mkdir()
    assert latest_checkpoint(tmp_path).name == "step_000003"
    state = load_checkpoint(latest_checkpoint(tmp_path), m, opts)
    assert state["loader"]["cursor"] == 3 and state["step"] == 3


def test_corrupt_or_incomplete_checkpoint_is_a_clear_error(tmp_path):
    m = GPT(CFG)
    opts = build_optimizers(m, 1e-3, 1e-2, 1e-3, 0.0)
    path = save_checkpoint(tmp_path, 5, m, opts, {"loader": {}})
    (path / "optim.safetensors").write_bytes(b"junk")
    with pytest.raises(ColossusError, match="corrupt"):
        load_checkpoint(path, m, opts)
    (path / "state.json").unlink()
    with pytest.raises(ColossusError, match="incomplete"):
        load_checkpoint(path, m, opts)
    (tmp_path / "checkpoints/latest").write_text("step_000099\n")
    with pytest.raises(ColossusError, match="missing"):
        latest_checkpoint(tmp_path)


def test_vocab_mismatch_is_refused(tmp_path, shards):
    small = ModelConfig(vocab_size=32, seq_len=16, n_layer=1, d_model=16, n_head=1, n_kv_head=1)
    with pytest.raises(ColossusError, match="vocabulary"):
        train(tmp_path / "x", small, tcfg(), shards)


def test_compiled_training_matches_eager_and_checkpoints_the_model_itself(tmp_path, shards, capsys):
    eager = train(tmp_path / "eager", CFG, tcfg(), shards)
    fast = train(tmp_path / "compiled", CFG, tcfg(compile=True), shards)
    assert "compile: the first step compiles the model" in capsys.readouterr().out
    assert fast["final_loss"] == pytest.approx(eager["final_loss"], rel=1e-3)
    a, b = weights(tmp_path / "eager"), weights(tmp_path / "compiled")  # plain names: no _orig_mod. prefix
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a)


def test_compile_without_a_cxx_compiler_trains_eagerly(tmp_path, shards, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    s = train(tmp_path / "run", CFG, tcfg(compile=True), shards)
    assert "no C++ compiler on this machine (install g++), training eagerly" in capsys.readouterr().out
    assert s["steps"] == 12
