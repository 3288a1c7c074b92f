"""End to end: the tiny preset runs every stage of the chain through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPORT_KEYS = {"known_accuracy", "abstain_rate", "hallucination_rate", "false_premise_rate", "bpb",
               "train_seconds", "tokens_per_second", "params"}


def colossus(*args: str, cwd: Path, stdin: str | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "colossus.cli", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speedrun")
    r = colossus("speedrun", "--preset", "tiny", "--no-chat", "--name", "t1", cwd=root)
    assert r.returncode == 0, r.stderr + r.stdout
    return root


def test_speedrun_writes_the_whole_chain(run):
    d = run / "runs" / "t1"
    assert (run / "runs" / "latest").resolve() == d.resolve()
    for f in ("world/entities.jsonl", "world/eval_test.jsonl", "world/chat_drill.jsonl", "tokenizer.json",
              "data/drill/meta.json", "data/pretrain/meta.json", "data/sft/meta.json", "drill/checkpoints/latest",
              "pretrain/checkpoints/latest", "sft/checkpoints/latest",
              "model/model.safetensors", "model/config.json", "model/tokenizer.json", "report.json",
              "report.md", "loss.png"):
        assert (d / f).exists(), f
    report = json.loads((d / "report.json").read_text())
    assert set(report) >= REPORT_KEYS
    for k in ("known_accuracy", "abstain_rate", "hallucination_rate", "false_premise_rate"):
        assert 0.0 <= report[k] <= 1.0
    assert report["params"] > 0 and report["bpb"] > 0 and report["train_seconds"] > 0
    training = json.loads((d / "model/training.json").read_text())  # the drill, then pretraining from it
    assert training["drill"]["steps"] == 4 and training["pretrain"]["steps"] == 40
    assert report["train_seconds"] >= training["drill"]["train_seconds"] + training["pretrain"]["train_seconds"]
    assert (run / "runs/t1/loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_speedrun_prints_progress_and_report(run):
    r = colossus("speedrun", "--resume", "--no-chat", cwd=run)  # everything is done: only the report again
    assert r.returncode == 0, r.stderr
    assert "known facts answered correctly" in r.stdout


def test_eval_prints_the_report(run):
    r = colossus("eval", "--model", "runs/latest", cwd=run)
    assert r.returncode == 0, r.stderr
    assert "Truth report" in r.stdout and "bits per byte" in r.stdout


def test_chat_streams_replies_and_obeys_commands(run):
    r = colossus("chat", "--model", "runs/latest", "--temperature", "0", cwd=run,
                 stdin="/help\n/system Be brief.\nWhere was Kel born?\n/temperature 0.5\n/clear\n/exit\n")
    assert r.returncode == 0, r.stderr
    assert "/clear" in r.stdout and "assistant>" in r.stdout and "(conversation cleared)" in r.stdout
    assert "(system prompt: 'Be brief.')" in r.stdout and "(temperature 0.5)" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["eval", "--model", "nowhere"], "no model at nowhere"),
    (["chat", "--model", "runs/t1/world"], "expected model.safetensors"),
    (["speedrun", "--preset", "huge", "--no-chat"], "unknown preset 'huge'"),
    (["speedrun", "--set", "pretrain.steps=many", "--no-chat"], "pretrain.steps must be int"),
    (["speedrun", "--set", "pretrain.nope=1", "--no-chat"], "unknown field pretrain.nope"),
    (["speedrun", "--bogus"], "unrecognized arguments: --bogus"),
    (["data", "tokenizer", "--corpus", "missing.txt", "--out", "t.json"], "does not exist"),
])
def test_bad_input_is_one_clear_line(run, args, message):
    r = colossus(*args, cwd=run)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_corrupt_checkpoint_is_one_clear_line(run, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(run / "runs/t1/model", model)
    (model / "model.safetensors").write_bytes(b"\x00" * 100)
    r = colossus("eval", "--model", str(model), "--world", str(run / "runs/t1/world"), cwd=run)
    assert r.returncode == 2 and "corrupt" in r.stderr and "Traceback" not in r.stderr


def test_unreadable_corpus_is_one_clear_line(run, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    r = colossus("data", "tokenizer", "--corpus", str(bad), "--out", str(tmp_path / "t.json"), cwd=run)
    assert r.returncode == 2 and "line 2: not JSON" in r.stderr and "Traceback" not in r.stderr


def test_user_corpus_trains_through_the_cli(run, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The quick brown fox jumps over the lazy dog. " * 200)
    (corpus / "b.jsonl").write_text("\n".join(json.dumps({"text": f"Line {i} of my notes."}) for i in range(300)))
    assert colossus("data", "tokenizer", "--corpus", str(corpus), "--out", str(tmp_path / "tok.json"),
                    "--vocab-size", "400", cwd=run).returncode == 0
    assert colossus("data", "shards", "--corpus", str(corpus), "--tokenizer", str(tmp_path / "tok.json"),
                    "--out", str(tmp_path / "shards"), cwd=run).returncode == 0
    r = colossus("train", "--preset", "tiny", "--data", str(tmp_path / "shards"), "--tokenizer",
                 str(tmp_path / "tok.json"), "--out", str(tmp_path / "stage"), "--set", "pretrain.steps=6", cwd=run)
    assert r.returncode == 0, r.stderr
    assert "step     6/6" in r.stdout
    assert (tmp_path / "stage/checkpoints/latest").exists()
