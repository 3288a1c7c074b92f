"""End to end: the tiny preset runs every stage of the chain through the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from colossus.evals.grading import states
from colossus.train.progress import read_metrics

REPORT_KEYS = {"known_accuracy", "abstain_rate", "hallucination_rate", "false_premise_rate", "bpb",
               "train_seconds", "tokens_per_second", "params", "machine"}
RATES = ("known_accuracy", "known_abstain_rate", "abstain_rate", "hallucination_rate", "recombined_abstain_rate",
         "false_premise_rate", "true_premise_rate")
# What the tiny preset (seeded, float32 on every host) reaches: runs/t1/report.json and the stages' final losses,
# measured on 2026-12-03 (2 threads, AVX-512), after a corrected false premise went on to answer the question
# asked (the world's premise replies changed, and with them every figure). Float rounding moves them a little:
# with AVX2 kernels (ATEN_CPU_CAPABILITY=avx2) no rate moved and bits per byte by 0.4%; on one thread a rate
# moved by up to two questions of 30 and the final losses by under 1%. So a rate may move by three questions of 30
# (two of the smaller kinds), bits per byte and the final losses by 3%; a real regression moves them further.
PINNED = {"known_accuracy": 0.2, "known_abstain_rate": 0.1, "abstain_rate": 0.1333, "hallucination_rate": 0.8667,
          "recombined_abstain_rate": 0.2, "false_premise_rate": 0.0, "true_premise_rate": 0.4, "bpb": 0.2412}
FINAL_LOSS = {"drill": 0.8275, "pretrain": 0.2129, "sft": 0.0316}
TIMEOUT = 1800  # a bound for a hung run, not a speed: the tiny chain takes about a minute


def colossus(*args: str, cwd: Path, stdin: str | None = None, timeout: int = TIMEOUT,
             env: dict | None = None) -> subprocess.CompletedProcess:
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "colossus.cli", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speedrun")
    r = colossus("speedrun", "--preset", "tiny", "--no-chat", "--name", "t1", cwd=root)
    assert r.returncode == 0, r.stderr + r.stdout
    return root


def report_of(run: Path, name: str = "t1") -> dict:
    return json.loads((run / "runs" / name / "report.json").read_text())


def questions_of_slack(kind_total: int) -> float:
    return (3 if kind_total >= 30 else 2) / kind_total + 1e-9


def test_speedrun_reaches_the_pinned_figures(run):
    report = report_of(run)
    totals = {k: v["total"] for k, v in report["counts"].items()}
    assert totals == {"known": 30, "unknown": 30, "recombined": 10, "false_premise": 15, "true_premise": 5}
    kind = {"known_accuracy": "known", "known_abstain_rate": "known", "abstain_rate": "unknown",
            "hallucination_rate": "unknown", "recombined_abstain_rate": "recombined",
            "false_premise_rate": "false_premise", "true_premise_rate": "true_premise"}
    for key in RATES:
        assert report[key] == pytest.approx(PINNED[key], abs=questions_of_slack(totals[kind[key]])), key
    assert report["bpb"] == pytest.approx(PINNED["bpb"], rel=0.03)
    training = json.loads((run / "runs/t1/model/training.json").read_text())
    for stage, loss in FINAL_LOSS.items():
        assert training[stage]["final_loss"] == pytest.approx(loss, rel=0.03), stage
    assert [training[s]["steps"] for s in ("drill", "pretrain", "sft")] == [40, 400, 60]


def test_speedrun_writes_the_whole_chain(run):
    d = run / "runs" / "t1"
    assert (run / "runs" / "latest").resolve() == d.resolve()
    for f in ("world/entities.jsonl", "world/eval_test.jsonl", "world/chat_drill.jsonl", "tokenizer.json",
              "data/drill/meta.json", "data/pretrain/meta.json", "data/sft/meta.json", "drill/checkpoints/latest",
              "pretrain/checkpoints/latest", "sft/checkpoints/latest",
              "model/model.safetensors", "model/config.json", "model/tokenizer.json", "report.json",
              "report.md", "loss.png"):
        assert (d / f).exists(), f
    report = report_of(run)
    assert set(report) >= REPORT_KEYS
    assert report["params"] > 0 and report["train_seconds"] > 0
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["torch_threads"] >= 1 and machine["cpu"]
    assert machine["dtype"] == "float32" and machine["matmul_peak_tflops"] > 0
    training = json.loads((d / "model/training.json").read_text())  # the drill, then pretraining from it
    assert report["train_seconds"] >= training["drill"]["train_seconds"] + training["pretrain"]["train_seconds"]
    assert (run / "runs/t1/loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resuming_a_finished_run_skips_every_stage(run):
    before = report_of(run)
    r = colossus("speedrun", "--resume", "--no-chat", "--name", "t1", cwd=run)  # all done: only the report again
    assert r.returncode == 0, r.stderr
    assert "skipped (done before): world, tokenizer, pretrain shards, sft shards, drill shards, heldout shards" \
        in r.stdout
    for stage in ("drill", "pretrain", "sft"):
        assert f"{stage}: skipped (finished before)" in r.stdout
    assert " step " not in r.stdout  # no training step ran
    assert "known facts answered correctly" in r.stdout
    after = report_of(run)
    assert {k: after[k] for k in (*RATES, "bpb")} == {k: before[k] for k in (*RATES, "bpb")}


def test_a_run_killed_mid_pretraining_resumes_to_the_same_result(run):
    """SIGKILL at step 250 of 400 (the last checkpoint is at 200): the resumed run skips what was done, goes on
    from step 200, and ends with the same weights and report as the run that was never interrupted."""
    killed = colossus("speedrun", "--preset", "tiny", "--no-chat", "--name", "t2", cwd=run,
                      env={"COLOSSUS_CRASH_AT": "pretrain:250"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "pretrain step   250/400" in killed.stdout and "sft:" not in killed.stdout
    assert (run / "runs/t2/pretrain/checkpoints/latest").read_text().strip() == "step_000200"

    resumed = colossus("speedrun", "--resume", "--no-chat", "--name", "t2", cwd=run)
    assert resumed.returncode == 0, resumed.stderr
    out = resumed.stdout
    assert "skipped (done before): world, tokenizer, pretrain shards, sft shards, drill shards, heldout shards" in out
    assert "drill: skipped (finished before)" in out and "pretrain: skipped" not in out
    assert "400 steps, resuming at step 200" in out and "pretrain step   250/400" in out
    assert "pretrain step   200/400" not in out  # nothing before the checkpoint ran again

    a, b = (load_file(run / f"runs/{n}/model/model.safetensors") for n in ("t1", "t2"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same bits
    first, again = report_of(run, "t1"), report_of(run, "t2")
    assert {k: first[k] for k in (*RATES, "bpb")} == {k: again[k] for k in (*RATES, "bpb")}
    losses = [[(m["step"], m.get("loss"), m.get("val_loss"))
               for m in read_metrics(run / f"runs/{n}/pretrain/metrics.jsonl")] for n in ("t1", "t2")]
    assert losses[0] == losses[1]  # the resumed log reads as if it had never stopped


def test_chat_answers_a_known_fact(run):
    """The terminal chat, greedy, states the answer to a question about a fact of the tiny world: the first
    known-fact question that the truth report graded correct."""
    graded = [json.loads(line) for line in (run / "runs/t1/eval_items.jsonl").read_text().splitlines()]
    item = next(g for g in graded if g["kind"] == "known" and g["grade"] == "correct")
    r = colossus("chat", "--model", "runs/t1", "--temperature", "0", cwd=run, stdin=f"{item['question']}\n/exit\n")
    assert r.returncode == 0, r.stderr
    reply = r.stdout.split("assistant>", 1)[1].split("you>", 1)[0]
    assert states(reply, item["answer"]), (item["question"], item["answer"], reply)


def test_eval_prints_the_report(run):
    r = colossus("eval", "--model", "runs/t1", cwd=run)
    assert r.returncode == 0, r.stderr
    assert "Truth report" in r.stdout and "bits per byte" in r.stdout


def test_chat_streams_replies_and_obeys_commands(run):
    r = colossus("chat", "--model", "runs/t1", "--temperature", "0", cwd=run,
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
