"""The whole chain in one command: world -> tokenizer -> shards -> premise drill -> pretraining -> chat
fine-tuning -> truth report -> chat.

The premise drill is the first stage of pretraining: premise questions alone, from a fresh model, so
it learns to compare the value a question states with the value it recalls before the facts crowd
that out (see colossus.world.chats.build_drill_chats). Pretraining then starts from its weights.

    colossus speedrun --preset cpu            (what `make speedrun` runs)
    colossus speedrun --resume                continue runs/latest after a crash or Ctrl-C

Everything lands in runs/NAME/ and runs/latest points at it. Each stage leaves a marker of
completion, so a resumed run skips what is done and continues training from its last checkpoint."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import datetime
from pathlib import Path

from colossus.config import RunConfig
from colossus.data.prepare import chat_texts, packed_shards, train_tokenizer
from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError
from colossus.evals.report import evaluate, format_report, write_report
from colossus.model.config import ModelConfig
from colossus.model.io import TOKENIZER, save_model
from colossus.train.checkpoint import latest_checkpoint
from colossus.train.progress import fmt_duration
from colossus.train.trainer import train
from colossus.world.build import generate, read_jsonl


def say(msg: str) -> None:
    print(msg, flush=True)


def point_latest(runs: Path, run_dir: Path) -> None:
    """runs/latest -> run_dir, replaced atomically."""
    link = runs / "latest"
    tmp = runs / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    tmp.replace(link)


def open_run(runs: Path, cfg: RunConfig | None, name: str | None, resume: bool) -> tuple[Path, RunConfig]:
    runs.mkdir(parents=True, exist_ok=True)
    if resume:
        run_dir = runs / name if name else (runs / "latest").resolve()
        if not (run_dir / "config.json").exists():
            raise ColossusError(f"nothing to resume at {run_dir}: start a run with `colossus speedrun`")
        return run_dir, RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert cfg is not None
    name = name or f"{cfg.preset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = runs / name
    if (run_dir / "config.json").exists():
        raise ColossusError(f"run {run_dir} already exists: pick another --name, or add --resume to continue it")
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    return run_dir, cfg


def prepare_data(run_dir: Path, cfg: RunConfig) -> Tokenizer:
    """The world, the tokenizer and the shards of every stage; what a resumed run already has is skipped (and
    said so)."""
    world_dir = run_dir / "world"
    done: list[str] = []
    if (world_dir / "world.json").exists():
        done.append("world")
    else:
        generate(world_dir, cfg.world, log=say)
    docs = [d["text"] for d in read_jsonl(world_dir / "documents.jsonl")]
    chats = read_jsonl(world_dir / "chat_train.jsonl")
    tok_path = run_dir / TOKENIZER
    if tok_path.exists():
        tok = Tokenizer.load(tok_path)
        done.append("tokenizer")
    else:
        tok = train_tokenizer(docs + list(chat_texts(chats)), tok_path, cfg.data.vocab_size, log=say,
                              whole_words=cfg.data.whole_word_min)
    n_pre = round(len(chats) * cfg.data.pretrain_chat_frac)
    seq = cfg.model.seq_len
    shards = [s for s in ("pretrain", "sft", "drill", "heldout") if (run_dir / f"data/{s}/meta.json").exists()]
    if "pretrain" not in shards:
        packed_shards(docs, chats[:n_pre], tok, run_dir / "data/pretrain", seq, cfg.pretrain.seed, say,
                      label="pretraining shards")
    if "sft" not in shards:
        sft_chats = chats[n_pre:] or chats  # with no chats held back, fine-tune on all of them
        n_replay = min(len(docs), round(len(sft_chats) * cfg.data.sft_doc_replay))
        replay = random.Random(cfg.sft.seed).sample(docs, n_replay)
        packed_shards(replay, sft_chats, tok, run_dir / "data/sft", seq, cfg.sft.seed, say,
                      label="fine-tuning shards")
    drill_file = world_dir / "chat_drill.jsonl"  # absent in worlds written before the drill existed
    if drill_file.exists() and "drill" not in shards:
        drill = read_jsonl(drill_file)
        if drill:
            packed_shards([], drill, tok, run_dir / "data/drill", seq, cfg.drill.seed, say, label="drill shards")
    if "heldout" not in shards:
        held = [d["text"] for d in read_jsonl(world_dir / "heldout_documents.jsonl")]
        packed_shards(held, [], tok, run_dir / "data/heldout", seq, 0, say, label="held-out shards")
    done += [f"{s} shards" for s in shards]
    if done:
        say(f"skipped (done before): {', '.join(done)}")
    return tok


def train_stage(run_dir: Path, stage: str, mcfg: ModelConfig, cfg: RunConfig, **kw) -> dict:
    """One training stage of the run, resumed from its last checkpoint; a finished one is skipped."""
    if (run_dir / stage / "summary.json").exists():
        say(f"{stage}: skipped (finished before)")
    return train(run_dir / stage, mcfg, getattr(cfg, stage), run_dir / f"data/{stage}", label=stage, resume=True,
                 **kw)


def model_config(cfg: RunConfig, tok: Tokenizer) -> ModelConfig:
    m = cfg.model
    vocab = (tok.vocab_size + 63) // 64 * 64  # a multiple of 64 keeps the matmuls aligned
    return ModelConfig(vocab_size=vocab, seq_len=m.seq_len, n_layer=m.n_layer, d_model=m.d_model,
                       n_head=m.n_head, n_kv_head=m.n_kv_head, mlp=m.mlp, copy_head=m.copy_head,
                       tie_embeddings=m.tie_embeddings)


def final_weights(stage_dir: Path) -> Path:
    ckpt = latest_checkpoint(stage_dir)
    if ckpt is None or not (stage_dir / "summary.json").exists():
        raise ColossusError(f"{stage_dir} has not finished: run `colossus speedrun --resume`")
    return ckpt / "model.safetensors"


def run_speedrun(cfg: RunConfig | None, runs: Path = Path("runs"), name: str | None = None,
                 resume: bool = False, chat: bool | None = None) -> Path:
    t0 = time.time()
    run_dir, cfg = open_run(runs, cfg, name, resume)
    point_latest(runs, run_dir)
    say(f"speedrun: preset {cfg.preset} -> {run_dir}" + (" (resumed)" if resume else ""))
    tok = prepare_data(run_dir, cfg)
    mcfg = model_config(cfg, tok)
    held = run_dir / "data/heldout"
    drill = None
    if (run_dir / "data/drill/meta.json").exists():
        drill = train_stage(run_dir, "drill", mcfg, cfg)
    pre = train_stage(run_dir, "pretrain", mcfg, cfg, val_data=held,
                      init_from=final_weights(run_dir / "drill") if drill else None)
    sft = train_stage(run_dir, "sft", mcfg, cfg, init_from=final_weights(run_dir / "pretrain"), val_data=held)
    from colossus.model.io import load_model

    model = load_model(final_weights(run_dir / "sft").parent)
    model_dir = save_model(run_dir / "model", model, run_dir / TOKENIZER)
    stages = [x for x in (drill, pre, sft) if x is not None]
    training = {"train_seconds": round(sum(x["train_seconds"] for x in stages), 2),
                "tokens_per_second": pre["tokens_per_second"], "drill": drill, "pretrain": pre, "sft": sft,
                "preset": cfg.preset}
    (model_dir / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    say("evaluating on the held-out test split ...")
    report, graded = evaluate(model_dir, run_dir / "world", "test")
    report["wall_seconds"] = round(time.time() - t0, 1)
    write_report(run_dir, report, graded, run_dir)
    say("")
    say(format_report(report))
    say(f"\nreport: {run_dir / 'report.md'}   model: {model_dir}   ({fmt_duration(time.time() - t0)} in all)")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if chat if chat is not None else interactive:
        from colossus.terminal_chat import LocalBackend, chat_loop

        say("\nChat with the new model (/exit to leave):")
        backend = LocalBackend(model_dir)
        try:
            chat_loop(backend)
        finally:
            backend.close()
    return run_dir
