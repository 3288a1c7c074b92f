"""`colossus plan` end to end: table, JSON, plots, model configs, and clear errors for nonsense."""

from __future__ import annotations

import argparse
import json

import pytest

from colossus.errors import ColossusError
from colossus.model.config import ModelConfig
from colossus.plan.cli import add_parser
from colossus.plan.hardware import Cluster, get_gpu
from colossus.plan.layout import Workload
from colossus.plan.models import PRESETS
from colossus.plan.planner import plan_run
from colossus.plan.plots import write_plots

REQUIRED_KEYS = ("tflops_per_gpu", "mfu", "step_time_s", "memory_gib_per_gpu", "tokens_per_day",
                 "days_to_train", "interruptions_per_day", "checkpoint_interval_min", "goodput", "power_mw")


def plan(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="colossus")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["plan", *argv])
    return args.func(args)


def test_json_has_the_documented_keys(capsys):
    assert plan("--model", "llama3-405b", "--gpu", "h100", "--gpus", "16384", "--seq", "8192",
                "--global-batch-tokens", "16M", "--tp", "8", "--pp", "16", "--json", "--runs", "200") == 0
    out = json.loads(capsys.readouterr().out)
    for key in REQUIRED_KEYS:
        assert isinstance(out[key], float), key
    assert out["layout"]["tp"] == 8 and out["layout"]["pp"] == 16
    assert 0.3 < out["mfu"] < 0.55
    assert out["memory_gib_per_gpu"] < 79.6
    assert out["finish_days"]["p10"] <= out["finish_days"]["p90"]


def test_table_lists_layouts_and_breakdowns(capsys):
    assert plan("--model", "llama3-8b", "--gpus", "64", "--global-batch-tokens", "4M", "--runs", "100") == 0
    out = capsys.readouterr().out
    for text in ("best layout", "memory per GPU", "step time", "interruptions/day", "MW average", "MFU"):
        assert text in out


def test_colossus_model_config_and_hand_shapes(tmp_path, capsys):
    path = tmp_path / "config.json"
    ModelConfig(vocab_size=32768, seq_len=2048, n_layer=24, d_model=2048, n_head=16, n_kv_head=4,
                mlp="swiglu").save(path)
    assert plan("--model", str(path), "--gpus", "64", "--global-batch-tokens", "2M", "--json",
                "--runs", "50") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["workload"]["seq_len"] == 2048 and out["model"]["layers"] == 24
    assert plan("--layers", "8", "--d-model", "1024", "--heads", "8", "--experts", "8", "--gpus", "16",
                "--global-batch-tokens", "1M", "--json", "--runs", "50") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"]["experts"] == 8 and out["model"]["top_k"] == 2


@pytest.mark.parametrize("argv, message", [
    (("--model", "llama3-405b", "--gpus", "0"), "at least 1 GPU"),
    (("--model", "llama3-405b", "--gpus", "16384", "--tp", "3"), "tp=3 does not divide the 128 attention"),
    (("--model", "llama3-405b", "--gpus", "8"), "does not fit on 8 x H100-SXM"),
    (("--model", "llama3-405b", "--gpus", "64", "--tp", "1", "--pp", "1"), "does not fit"),
    (("--model", "gpt-5", "--gpus", "8"), "unknown model"),
    (("--model", "llama3-8b", "--gpus", "8", "--gpu", "tpu-v9"), "unknown GPU"),
    (("--model", "llama3-8b", "--gpus", "8", "--tokens", "lots"), "cannot read 'lots'"),
    (("--model", "llama3-8b", "--gpus", "1000000", "--global-batch-tokens", "8192"), "cannot keep"),
    (("--gpus", "8",), "name a --model"),
])
def test_nonsense_input_gets_a_clear_message(argv, message):
    with pytest.raises(ColossusError, match=message):
        plan(*argv)


def test_plots_are_written(tmp_path):
    answer = plan_run(Workload(PRESETS["llama3-8b"], 8192, 4e6, 1e12), Cluster(get_gpu("h100"), 512),
                      keep=3, runs=100)
    written = write_plots(answer, tmp_path / "plots", {}, counts=(1000, 10_000))
    assert sorted(p.name for p in written) == ["days_vs_gpus.png", "memory_breakdown.png", "mfu_vs_gpus.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validate_prints_published_against_predicted(capsys):
    assert plan("--validate") == 0
    out = capsys.readouterr().out
    assert "Llama 3 405B" in out and "BLOOM" in out and "published" in out
