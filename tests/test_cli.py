"""Every flag of README.md's "Commands" through the real command line (`python -m colossus.cli`), checked by
the outcome the flag promises: what the files hold, the steps that run, the weights a stage starts from.

One tiny model is built once for the module (a speedrun whose config comes from a TOML file) and reused."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]

# The module's model, set up by a TOML file: smaller eval splits, one layer, a few steps of each stage.
TINY_TOML = """\
[world]
eval_known = 10
eval_unknown = 10
eval_premise = 8
eval_recombined = 4

[model]
n_layer = 1

[drill]
steps = 2
batch_size = 4

[pretrain]
steps = 6
log_every = 2
"""
SHAPE = ("--preset", "tiny", "--set", "model.n_layer=1")
"""What `train` and `sft` need to build the module model's shape (tiny has two layers)."""


def colossus(*args: str, cwd: Path, stdin: str | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    # one torch thread unless told otherwise: on a small machine shared with other work, a second spinning
    # thread made the eval 5x slower here; nothing below depends on the thread count
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "colossus.cli", *map(str, args)], cwd=cwd, input=stdin, text=True,
                          capture_output=True, timeout=timeout, env=env)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-2000:]
    return r


def one_line_error(r: subprocess.CompletedProcess, message: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def metrics(stage: Path) -> list[dict]:
    return [json.loads(ln) for ln in (stage / "metrics.jsonl").read_text().splitlines() if ln.strip()]


def loss_rows(stage: Path) -> list[dict]:
    return [m for m in metrics(stage) if "loss" in m]


def final_weights(stage: Path) -> dict:
    latest = (stage / "checkpoints/latest").read_text().strip()
    return load_file(str(stage / "checkpoints" / latest / "model.safetensors"))


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].equal(b[k]) for k in a)


@dataclass
class Run:
    root: Path
    dir: Path
    stdout: str

    @property
    def model(self) -> Path:
        return self.dir / "model"

    @property
    def tokenizer(self) -> Path:
        return self.dir / "tokenizer.json"

    def model_weights(self) -> dict:
        return load_file(str(self.model / "model.safetensors"))

    def vocab(self) -> int:
        return json.loads((self.model / "config.json").read_text())["vocab_size"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.toml").write_text(TINY_TOML)
    r = ok(colossus("speedrun", "--preset", "tiny", "--config", "tiny.toml", "--set", "sft.steps=2", "--no-chat",
                    "--name", "x", cwd=root))
    return Run(root, root / "runs/x", r.stdout)


@pytest.fixture(scope="module")
def scratch(run) -> Path:
    """Four pretraining steps from a fresh model, every step logged."""
    out = run.root / "scratch"
    ok(colossus("train", "--data", run.dir / "data/pretrain", "--tokenizer", run.tokenizer, "--out", out, *SHAPE,
                "--set", "pretrain.steps=4", "--set", "pretrain.log_every=1", cwd=run.root))
    return out


# --- colossus data world -------------------------------------------------------------------------------------


def test_data_world_counts_follow_entities_and_docs_per_entity(tmp_path):
    for n, d in ((40, 3), (50, 2)):
        out = tmp_path / f"w{n}"
        r = ok(colossus("data", "world", "--out", out, "--entities", n, "--docs-per-entity", d, "--seed", 7,
                        cwd=tmp_path))
        meta = json.loads((out / "world.json").read_text())
        assert meta["config"]["entities"] == n and meta["config"]["docs_per_entity"] == d
        assert meta["config"]["seed"] == 7
        # documents = entities x docs per entity (no "no record" documents by default)
        assert meta["counts"]["entities"] == n and meta["counts"]["documents"] == n * d
        assert len((out / "entities.jsonl").read_text().splitlines()) == n
        assert len((out / "documents.jsonl").read_text().splitlines()) == n * d
        assert f"{n} entities" in r.stdout and f"{n * d} documents" in r.stdout


def world_files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_data_world_seed_is_reproducible_and_changes_the_names(tmp_path):
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        ok(colossus("data", "world", "--out", tmp_path / name, "--entities", 30, "--docs-per-entity", 2,
                    "--seed", seed, cwd=tmp_path))
    a, b, c = (world_files(tmp_path / n) for n in "abc")
    assert len(a) >= 9 and a == b  # same seed: every file byte for byte

    def names(d: str) -> set[str]:
        return {json.loads(ln)["name"] for ln in (tmp_path / d / "entities.jsonl").read_text().splitlines()}

    assert len(names("a")) == 30
    assert len(names("a") & names("c")) <= 3  # another seed: another world, not a reshuffle of the same names


@pytest.mark.parametrize("args, message", [
    (("--entities", "3"), "--entities must be at least 20 (got 3)"),
    (("--docs-per-entity", "0"), "docs_per_entity must be at least 1"),
    (("--seed", "x"), "argument --seed: invalid int value: 'x'"),
])
def test_data_world_bad_values_are_one_clear_line(tmp_path, args, message):
    r = colossus("data", "world", "--out", tmp_path / "w", *args, cwd=tmp_path)
    one_line_error(r, message)
    assert not (tmp_path / "w").exists()


# --- --config on speedrun and train --------------------------------------------------------------------------


def test_speedrun_config_file_sets_what_runs(run):
    # the TOML's steps and layers are what ran (tiny alone: drill 4, pretrain 40, 2 layers); --set adds to it
    starts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(drill|pretrain|sft): .* (\d+) steps", run.stdout,
                                                                re.M)}
    assert starts == {"drill": 2, "pretrain": 6, "sft": 2}
    training = json.loads((run.model / "training.json").read_text())
    assert [training[s]["steps"] for s in ("drill", "pretrain", "sft")] == [2, 6, 2]
    assert [m["step"] for m in loss_rows(run.dir / "pretrain")] == [2, 4, 6]  # pretrain.log_every = 2
    assert json.loads((run.model / "config.json").read_text())["n_layer"] == 1
    assert json.loads((run.dir / "world/world.json").read_text())["config"]["eval_known"] == 10
    report = json.loads((run.dir / "report.json").read_text())
    assert training["pretrain"]["params"] == report["params"] == params_of(run, n_layer=1)
    assert report["params"] < params_of(run, n_layer=2)
    assert f"{report['params'] / 1e6:.2f}M params" in run.stdout


def params_of(run: Run, n_layer: int) -> int:
    import torch

    from colossus.model.config import ModelConfig
    from colossus.model.gpt import GPT

    cfg = json.loads((run.model / "config.json").read_text())
    with torch.device("meta"):
        return GPT(ModelConfig(**{**cfg, "n_layer": n_layer})).num_params()


def test_train_config_file_sets_steps_and_shape_and_set_wins(run, tmp_path):
    toml = tmp_path / "train.toml"
    toml.write_text("[model]\nn_layer = 3\n\n[pretrain]\nsteps = 5\nlog_every = 1\nbatch_size = 4\n")
    out = tmp_path / "stage"
    r = ok(colossus("train", "--preset", "tiny", "--config", toml, "--set", "pretrain.steps=3", "--data",
                    run.dir / "data/pretrain", "--tokenizer", run.tokenizer, "--out", out, cwd=run.root))
    params = params_of(run, n_layer=3)
    assert f"pretrain: {params / 1e6:.2f}M params" in r.stdout and ", 3 steps" in r.stdout  # --set over the file
    summary = json.loads((out / "summary.json").read_text())
    seq_len = json.loads((run.model / "config.json").read_text())["seq_len"]
    assert summary["steps"] == 3 and summary["params"] == params and summary["tokens"] == 3 * 4 * seq_len
    assert [m["step"] for m in loss_rows(out)] == [1, 2, 3]
    assert json.loads((out / "checkpoints/step_000003/config.json").read_text())["n_layer"] == 3


# --- colossus train: --resume and --init ---------------------------------------------------------------------


def test_train_resume_continues_from_the_checkpoint(run, scratch, tmp_path):
    stage = tmp_path / "stage"
    shutil.copytree(scratch, stage)
    before = loss_rows(stage)
    assert [m["step"] for m in before] == [1, 2, 3, 4]
    r = ok(colossus("train", "--data", run.dir / "data/pretrain", "--tokenizer", run.tokenizer, "--out", stage,
                    *SHAPE, "--set", "pretrain.steps=7", "--set", "pretrain.log_every=1", "--resume", cwd=run.root))
    assert "7 steps, resuming at step 4" in r.stdout
    assert "step     1/7" not in r.stdout and "step     5/7" in r.stdout  # steps 1-4 are not run again
    after = loss_rows(stage)
    assert [m["step"] for m in after] == [1, 2, 3, 4, 5, 6, 7]
    assert after[:4] == before  # the log of the first run is kept, the new steps follow it
    assert (stage / "checkpoints/latest").read_text().strip() == "step_000007"
    assert json.loads((stage / "summary.json").read_text())["steps"] == 7
    # continued from the trained weights, not from a fresh model at step 4 (a fresh model's loss is ln V)
    assert after[4]["loss"] < before[0]["loss"] - 0.05


def test_train_init_starts_from_the_given_weights(run, scratch, tmp_path):
    out = tmp_path / "init"
    ok(colossus("train", "--data", run.dir / "data/pretrain", "--tokenizer", run.tokenizer, "--out", out, *SHAPE,
                "--init", run.dir, "--set", "pretrain.steps=1", "--set", "pretrain.log_every=1",
                "--set", "pretrain.lr=0", "--set", "pretrain.embed_lr=0", "--set", "pretrain.head_lr=0",
                "--set", "pretrain.muon_lr=0",
                cwd=run.root))
    # the first logged loss is that of the weights before step 1: a fresh model's is ln(vocab)
    fresh = loss_rows(scratch)[0]["loss"]
    assert abs(fresh - math.log(run.vocab())) < 0.05
    # the run's model was trained for a few hundred steps on a world that moves with the chat data (6.00 against
    # 6.24 since the corrected premises go on to answer): below a fresh model's, as in the resume test above
    assert loss_rows(out)[0]["loss"] < fresh - 0.05
    # with every learning rate 0 the step changes nothing: the weights are the init's, bit for bit
    assert same_weights(final_weights(out), run.model_weights())
    assert not same_weights(final_weights(scratch), run.model_weights())


# --- colossus sft --------------------------------------------------------------------------------------------


def test_data_shards_packs_conversations_for_sft(run, tmp_path):
    out, world = tmp_path / "chats", run.dir / "world"
    r = ok(colossus("data", "shards", "--chats", world / "chat_train.jsonl", "--corpus",
                    world / "heldout_documents.jsonl", "--tokenizer", run.tokenizer, "--out", out, cwd=run.root))
    n_chats = len((run.dir / "world/chat_train.jsonl").read_text().splitlines())
    n_docs = len((run.dir / "world/heldout_documents.jsonl").read_text().splitlines())
    assert f"{n_docs:,} documents + {n_chats:,} conversations" in r.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["has_mask"] and meta["row_len"] == 129  # --seq-len 128, one longer
    mask = np.fromfile(out / "shard_00000.mask", dtype=np.uint8)
    assert (mask == 0).any() and (mask > 0).any()  # the loss on some tokens (the assistant's), not on all


@pytest.mark.parametrize(("args", "message"), [
    ((), "needs --corpus (documents), --chats (conversations), or both"),
    (("--chats", "documents.txt"), "conversations come in a .jsonl file"),
    (("--chats", "bad.jsonl"), "bad.jsonl line 2: no list field 'messages'"),
])
def test_data_shards_bad_chats_are_one_clear_line(run, tmp_path, args, message):
    (tmp_path / "documents.txt").write_text("a document")
    (tmp_path / "bad.jsonl").write_text('{"messages": []}\n{"text": "a document"}\n')
    r = colossus("data", "shards", *args, "--tokenizer", run.tokenizer, "--out", tmp_path / "out", cwd=tmp_path)
    one_line_error(r, message)


def test_sft_fine_tunes_from_the_init(run, tmp_path):
    chats = tmp_path / "chats"  # packed by the CLI from the world's conversations, as a user would
    ok(colossus("data", "shards", "--chats", run.dir / "world/chat_train.jsonl", "--corpus",
                run.dir / "world/documents.jsonl", "--tokenizer", run.tokenizer, "--out", chats, cwd=run.root))
    out = tmp_path / "sft"
    r = ok(colossus("sft", "--data", chats, "--tokenizer", run.tokenizer, "--out", out, *SHAPE,
                    "--init", run.model, "--set", "sft.steps=3", "--set", "sft.log_every=1", cwd=run.root))
    assert "sft: " in r.stdout and ", 3 steps" in r.stdout
    rows = loss_rows(out)
    assert [m["step"] for m in rows] == [1, 2, 3] and all(math.isfinite(m["loss"]) for m in rows)
    ok(colossus("train", "--data", chats, "--tokenizer", run.tokenizer, "--out", tmp_path / "fresh", *SHAPE,
                "--set", "pretrain.steps=1", "--set", "pretrain.log_every=1", cwd=run.root))
    fresh = loss_rows(tmp_path / "fresh")[0]["loss"]
    assert rows[0]["loss"] < fresh - 0.1  # started from trained weights, not from a fresh model
    tuned, init = final_weights(out), run.model_weights()
    assert tuned.keys() == init.keys() and not same_weights(tuned, init)
    changed = [k for k in init if not tuned[k].equal(init[k])]
    assert "lm_head.weight" in changed and len(changed) >= len(init) // 2


def test_sft_init_keeps_the_models_own_shape(run, tmp_path):
    """The README's `colossus sft ... --init MODEL` takes --preset cpu unless told: the tiny model is fine-tuned in
    its own shape, not refused or rebuilt in the preset's."""
    r = colossus("sft", "--data", run.dir / "data/sft", "--tokenizer", run.tokenizer, "--out", tmp_path / "s",
                 "--init", run.model, "--set", "sft.steps=1", cwd=run.root)
    assert r.returncode == 0, r.stderr
    init = json.loads((run.model / "config.json").read_text())
    tuned = json.loads((tmp_path / "s/checkpoints/step_000001/config.json").read_text())
    assert tuned == init


def test_weights_of_another_shape_are_one_clear_line(run, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(run.model, model)
    cfg = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**cfg, "d_model": cfg["d_model"] * 2}))
    r = colossus("eval", "--model", model, "--world", run.dir / "world", cwd=run.root)
    one_line_error(r, "do not match the model's shape")


# --- colossus eval -------------------------------------------------------------------------------------------


def printed_counts(stdout: str) -> dict[str, int]:
    line = next(ln for ln in stdout.splitlines() if ln.strip().startswith("questions:"))
    return {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", line.split(":", 1)[1])}


def world_counts(run: Run, split: str) -> dict[str, int]:
    rows = (run.dir / f"world/eval_{split}.jsonl").read_text().splitlines()
    return dict(Counter(json.loads(ln)["kind"] for ln in rows))


def printed_figures(stdout: str) -> dict[str, str]:
    from colossus.evals.report import RATES

    figures = {}
    for key, label, _ in RATES:
        m = re.search(rf"^  {re.escape(label)}\s+(-?\d+\.\d{{3}})\s+\(", stdout, re.M)
        if m:
            figures[key] = m.group(1)
    return figures


def test_eval_split_and_out(run, tmp_path):
    val = ok(colossus("eval", "--model", run.dir, "--split", "val", cwd=run.root))
    test = ok(colossus("eval", "--model", run.model, "--split", "test", "--out", tmp_path / "rep", cwd=run.root))
    assert val.stdout.startswith("Truth report (val split,") and test.stdout.startswith("Truth report (test split,")
    assert printed_counts(val.stdout) == world_counts(run, "val")
    assert printed_counts(test.stdout) == world_counts(run, "test")
    assert printed_counts(val.stdout) != printed_counts(test.stdout)  # the val split is half the test split

    report = json.loads((tmp_path / "rep/report.json").read_text())
    assert report["split"] == "test"
    assert {k: v["total"] for k, v in report["counts"].items()} == world_counts(run, "test")
    figures = printed_figures(test.stdout)
    assert {"known_accuracy", "abstain_rate", "false_premise_rate", "bpb"} <= set(figures)  # a rate may be None
    md = (tmp_path / "rep/report.md").read_text()
    assert "Held-out **test** split" in md
    for key, shown in figures.items():
        assert f"{report[key]:.3f}" == shown, key  # report.json holds what was printed
        assert f"(`{key}`) | {shown} |" in md, key  # and so does report.md
    assert f"written to {tmp_path / 'rep'}/report.json" in test.stdout


def test_eval_runs_the_truth_report_on_a_hugging_face_folder_with_its_own_template(run, tmp_path):
    """An imported model (here a tiny random Llama saved by transformers, with the run's tokenizer and a Jinja
    template of its own) goes through the same report: every question of the split is asked and graded."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer as HFTokenizer

    folder = tmp_path / "hf"
    vocab = HFTokenizer.from_file(str(run.dir / "tokenizer.json")).get_vocab_size()
    transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=256)).save_pretrained(folder)
    shutil.copyfile(run.dir / "tokenizer.json", folder / "tokenizer.json")
    template = ("{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template, "eos_token": "<|end|>"}))
    r = ok(colossus("eval", "--model", folder, "--world", run.dir / "world", "--split", "val", cwd=run.root))
    assert r.stdout.startswith("Truth report (val split,")
    assert printed_counts(r.stdout) == world_counts(run, "val")


def test_eval_bad_split_is_one_clear_line(run):
    one_line_error(colossus("eval", "--model", run.dir, "--split", "train", cwd=run.root),
                   "--split must be val or test, not 'train'")


# --- colossus chat --system ----------------------------------------------------------------------------------


def test_chat_system_prompt_is_in_the_prompt_the_model_sees(run):
    from colossus.data.chat_template import render_prompt
    from colossus.data.tokenizer import Tokenizer

    # Greedy replies of this tiny model do not depend on the prompt, so the effect checked is the prompt's
    # length: a system prompt longer than the context leaves for it makes the chat refuse with the token count
    # of [system, user], exactly; `/system` alone removes it, and the same question is answered.
    system = "Answer briefly, truthfully, and say when you do not know. " * 4
    question = "Where was Kel born?"
    r = ok(colossus("chat", "--model", run.dir, "--temperature", "0", "--system", system, cwd=run.root,
                    stdin=f"{question}\n/system\n{question}\n/exit\n"))
    tok = Tokenizer.load(run.tokenizer)
    with_system = len(render_prompt(tok, [{"role": "system", "content": system},
                                          {"role": "user", "content": question}]))
    alone = len(render_prompt(tok, [{"role": "user", "content": question}]))
    assert with_system > alone + 20
    assert f"(error: the message is too long: {with_system} tokens" in r.stdout
    assert "(system prompt removed)" in r.stdout
    after = r.stdout.split("(system prompt removed)", 1)[1]
    assert "assistant> " in after and "(error" not in after



# --- colossus export -----------------------------------------------------------------------------------------


def test_export_hf_of_a_speedrun_model_loads_in_transformers_with_its_logits(run, tmp_path):
    import torch

    from colossus.model import load_model

    transformers = pytest.importorskip("transformers")
    r = ok(colossus("export", "--model", run.dir, "--format", "hf", "--out", tmp_path / "hf", cwd=tmp_path))
    assert "model_type apertus" in r.stdout  # the presets train relu2 with QK-norm: apertus expresses both
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    ids = torch.randint(0, run.vocab(), (1, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, load_model(run.model)(ids), atol=1e-4, rtol=0)


def test_export_gguf_writes_the_asked_type(tmp_path, tok):
    from export_tiny import tiny_ours

    from colossus.model.gguf_file import GGUFFile

    tiny_ours(tok, tmp_path / "m", mlp="swiglu")
    r = ok(colossus("export", "--model", tmp_path / "m", "--format", "gguf", "--dtype", "q8_0", "--out",
                    tmp_path / "out/m.gguf", cwd=tmp_path))
    assert "architecture qwen3, q8_0 matrices" in r.stdout
    f = GGUFFile(tmp_path / "out/m.gguf")
    assert f.tensors["blk.0.ffn_up.weight"].tensor_type.name == "Q8_0"


@pytest.mark.parametrize("dtype, torch_dtype", [("bf16", "bfloat16"), ("f16", "float16")])
def test_export_hf_in_16_bits(tmp_path, tok, dtype, torch_dtype):
    import torch
    from export_tiny import tiny_ours

    from colossus.model import load_model

    transformers = pytest.importorskip("transformers")
    ours = tiny_ours(tok, tmp_path / "m", mlp="swiglu")
    r = ok(colossus("export", "--model", tmp_path / "m", "--format", "hf", "--dtype", dtype, "--out",
                    tmp_path / "hf", cwd=tmp_path))
    assert f"model_type qwen3, {dtype} weights" in r.stdout
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype="auto").eval()
    assert str(hf.dtype) == f"torch.{torch_dtype}"
    back = load_model(tmp_path / "hf")  # in its own dtype; the same values as ours rounded to it
    assert str(next(back.parameters()).dtype) == f"torch.{torch_dtype}"
    for p, q in zip(back.parameters(), ours.parameters(), strict=True):
        assert torch.equal(p, q.to(p.dtype))


def test_export_bad_input_is_one_clear_line(run, tmp_path):
    cases = [
        (("--model", tmp_path / "nothing", "--format", "hf"), "no model at"),
        (("--model", run.dir, "--format", "onnx"), "argument --format: invalid choice: 'onnx'"),
        (("--model", run.dir, "--format", "gguf"), "mlp = 'relu2' has no llama.cpp architecture"),
        (("--model", run.dir, "--format", "hf", "--dtype", "q8_0"), "--dtype q8_0 goes with --format gguf"),
        (("--model", run.dir, "--format", "gguf", "--dtype", "bf16"), "--dtype must be one of f32, f16, q8_0"),
    ]
    for args, message in cases:
        one_line_error(colossus("export", *args, "--out", tmp_path / "out", cwd=tmp_path), message)
