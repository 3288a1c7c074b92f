"""`colossus plan` end to end: table, JSON, plots, model configs, and clear errors for nonsense."""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

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


# --- through the real command line: `python -m colossus.cli plan` -------------------------------------------

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
TAB = {"C0": (31, 119, 180), "C1": (255, 127, 14), "C2": (44, 160, 44), "C3": (214, 39, 40), "C4": (148, 103, 189)}
"""matplotlib's first five colours: lines and bars are drawn in them, axes and text are not."""


def colossus_plan(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "colossus.cli", "plan", *map(str, args)], cwd=cwd or REPO,
                          text=True, capture_output=True, timeout=300, env=env)


def cli_layout(capsys, *args: str) -> dict:
    """The best layout of `colossus plan ARGS --json`, through colossus.cli's own parser and main()."""
    from colossus.cli import main

    assert main(["plan", *args, "--json", "--runs", "20"]) == 0
    return json.loads(capsys.readouterr().out)["layout"]


def pixels_of(image, rgb: tuple[int, int, int], tol: int = 12) -> int:
    import numpy as np

    return int((np.abs(image[..., :3].astype(int) - np.array(rgb)) <= tol).all(axis=-1).sum())


def test_plot_flag_writes_real_plots(tmp_path):
    import matplotlib.image as mpimg

    out = tmp_path / "plots"
    r = colossus_plan("--model", "llama3-8b", "--gpus", "64", "--global-batch-tokens", "4M", "--runs", "50",
                      "--plot", out)
    assert r.returncode == 0, r.stderr
    names = ("mfu_vs_gpus.png", "days_vs_gpus.png", "memory_breakdown.png")  # MFU, days vs GPUs; memory
    assert f"plots: {', '.join(str(out / n) for n in names)}" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    drawn = {"mfu_vs_gpus.png": ["C0"], "days_vs_gpus.png": ["C0", "C1"],  # one line; with and without failures
             "memory_breakdown.png": ["C0", "C1", "C2", "C3", "C4"]}  # weights, grads, optimizer, activations, buffers
    for name in names:
        data = (out / name).read_bytes()
        assert data[:8] == PNG and data[12:16] == b"IHDR" and len(data) > 10_000, name
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 600 and height >= 300, (name, width, height)
        image = (mpimg.imread(out / name) * 255).round().astype("uint8")
        assert image.shape[:2] == (height, width)
        for colour in drawn[name]:
            assert pixels_of(image, TAB[colour]) > 100, (name, colour)


def test_plot_with_json_keeps_stdout_json(tmp_path):
    r = colossus_plan("--model", "llama3-8b", "--gpus", "64", "--global-batch-tokens", "4M", "--runs", "20",
                      "--json", "--plot", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["layout"]["tp"] >= 1
    assert (tmp_path / "p/memory_breakdown.png").read_bytes()[:8] == PNG


LLAMA_16K = ("--model", "llama3-405b", "--gpus", "16384")
GROK_2K = ("--model", "grok-1", "--gpus", "2048")


@pytest.mark.parametrize("base, flag, value", [
    (LLAMA_16K, "tp", 4), (LLAMA_16K, "pp", 8), (LLAMA_16K, "dp", 64), (LLAMA_16K, "cp", 2), (GROK_2K, "ep", 2),
], ids=lambda x: x if isinstance(x, str) else None)
def test_a_fixed_degree_is_the_one_in_the_layout(capsys, base, flag, value):
    free = cli_layout(capsys, *base)
    assert free[flag] != value  # the search alone picks another: the flag is what changes it
    fixed = cli_layout(capsys, *base, f"--{flag}", str(value))
    assert fixed[flag] == value
    gpus = int(base[-1])
    used = fixed["tp"] * fixed["cp"] * fixed["pp"] * fixed["dp"]
    assert 0.95 * gpus <= used <= gpus  # the rest of the layout is searched around it and fills the cluster


def test_several_fixed_degrees_together(capsys):
    layout = cli_layout(capsys, *LLAMA_16K, "--tp", "8", "--pp", "16", "--dp", "64")
    assert (layout["tp"], layout["pp"], layout["dp"]) == (8, 16, 64)
    assert layout["cp"] == 2  # 16,384 / (8 x 16 x 64): the one degree left open


@pytest.mark.parametrize("args, message", [
    ((*LLAMA_16K, "--tp", "8", "--pp", "16", "--dp", "256"),
     "no valid layout with tp=8 pp=16 dp=256: tp=8 cp=1 pp=16 dp=256 mb=1 recompute=none zero=1 needs 32768 GPUs, "
     "more than 16384"),
    ((*GROK_2K, "--ep", "3"), "no valid layout with ep=3: ep=3 does not divide the 8 experts"),
    ((*LLAMA_16K, "--ep", "2"), "ep=2 needs a mixture-of-experts model; llama3-405b is dense"),
    ((*LLAMA_16K, "--pp", "200"), "pp=200 is more pipeline stages than the 126 layers"),
    ((*LLAMA_16K, "--dp", "x"), "argument --dp: invalid int value: 'x'"),
])
def test_impossible_layout_is_one_clear_line(args, message):
    r = colossus_plan(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
