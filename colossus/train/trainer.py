"""The training loop, shared by pretraining and chat fine-tuning.

    colossus train --data runs/x/data/pretrain --out runs/x/pretrain     (see `colossus train --help`)

Fine-tuning differs only in its data: packed conversations whose mask keeps the loss on the
assistant's tokens. Every `ckpt_every` steps, and at the end, a checkpoint is written atomically;
`resume=True` continues from the newest one exactly (weights, optimizer, RNG, loader position).

Crash tests: COLOSSUS_CRASH_AT=LABEL:STEP makes the process kill itself (SIGKILL, as the OOM killer or a lost
node would) right after step STEP of the stage LABEL, so a test can crash a run at a known point."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from dataclasses import asdict
from pathlib import Path

import torch

from colossus.data.loader import TokenLoader
from colossus.data.shards import Shards
from colossus.errors import ColossusError
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.model.io import load_weights
from colossus.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from colossus.train.config import TrainConfig
from colossus.train.device import machine, pick_device
from colossus.train.optim import build_optimizers, lr_factor, set_lr
from colossus.train.progress import MetricsLog, Progress, Throughput, fmt_count, fmt_duration


def crash_point() -> tuple[str, int] | None:
    """(stage label, step) from $COLOSSUS_CRASH_AT, for crash tests; None when unset."""
    value = os.environ.get("COLOSSUS_CRASH_AT")
    if not value:
        return None
    label, _, step = value.rpartition(":")
    if not label or not step.isdigit():
        raise ColossusError(f"COLOSSUS_CRASH_AT must be LABEL:STEP, e.g. pretrain:30, not {value!r}")
    return label, int(step)


def compiled(model: GPT, device, progress: Progress) -> torch.nn.Module:
    """The model through torch.compile, or the model itself where inductor has no compiler to use."""
    if device.torch.type == "cpu" and not any(shutil.which(cxx) for cxx in ("c++", "g++", "clang++")):
        progress.note("compile: no C++ compiler on this machine (install g++), training eagerly")
        return model
    progress.note("compile: the first step compiles the model, the ones after it run faster")
    return torch.compile(model)


@torch.no_grad()
def evaluate_loss(model: GPT, loader: TokenLoader, device, batches: int) -> float:
    """Mean loss over the loader's first `batches` batches: the same ones every time, so that validation losses
    compare across steps, and a resumed run logs what the uninterrupted one did."""
    loader.rewind()
    model.eval()
    loss_sum = 0.0
    for _ in range(batches):
        x, y, m = loader.next_batch()
        with device.autocast(), device.attention_backend():
            loss = model(x.to(device.torch), y.to(device.torch), None if m is None else m.to(device.torch))
        loss_sum += loss.item()
    model.train()
    return loss_sum / batches


def train(stage_dir: str | Path, model_cfg: ModelConfig, cfg: TrainConfig, data: str | Path, *,
          label: str = "train", init_from: str | Path | dict[str, torch.Tensor] | None = None, resume: bool = False,
          val_data: str | Path | None = None) -> dict:
    """Train into stage_dir; return a summary (steps, seconds, tokens/s, final loss)."""
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device, cfg.dtype)
    torch.manual_seed(cfg.seed)
    shards = Shards(data)
    if shards.meta["vocab_size"] > model_cfg.vocab_size:
        raise ColossusError(f"shards use a vocabulary of {shards.meta['vocab_size']}, larger than the "
                            f"model's {model_cfg.vocab_size}")
    model = GPT(model_cfg).to(device.torch)
    if isinstance(init_from, dict):  # an imported model's weights (colossus.model.load_model)
        model.load_state_dict(init_from)
    elif init_from is not None:
        load_weights(Path(init_from), model)
    opts = build_optimizers(model, cfg.lr, cfg.embed_lr, cfg.head_lr, cfg.weight_decay, cfg.muon, cfg.muon_lr)
    seq_len = model_cfg.seq_len
    if shards.row_len and shards.row_len - 1 < seq_len:  # packed rows shorter than the context (an imported model
        seq_len = shards.row_len - 1                    # of 8k positions fine-tuned on short chats): their length
    loader = TokenLoader(shards, cfg.batch_size, seq_len, seed=cfg.seed)
    val_loader = TokenLoader(Shards(val_data), cfg.batch_size, seq_len, seed=0) if val_data else None

    total = cfg.steps or max(1, round(cfg.epochs * loader.windows_per_epoch / (cfg.batch_size * cfg.grad_accum)))
    start, prior_seconds = 0, 0.0
    ckpt = latest_checkpoint(stage_dir) if resume else None
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, opts)
        loader.load_state_dict(state["loader"])
        start, prior_seconds = state["step"], state.get("train_seconds", 0.0)
    if start >= total and ckpt is not None:
        return json.loads((stage_dir / "summary.json").read_text()) if (stage_dir / "summary.json").exists() \
            else {"steps": start, "train_seconds": prior_seconds}
    log = MetricsLog(stage_dir / "metrics.jsonl", resume_step=start if ckpt is not None else None)

    tokens_per_step = cfg.batch_size * cfg.grad_accum * seq_len
    flops_per_token = model.flops_per_token()
    peak, peak_src = device.peak_flops()
    progress = Progress(label, total)
    progress.note(f"{label}: {model.num_params() / 1e6:.2f}M params on {device.name} ({str(device.dtype)[6:]}), "
                  f"{fmt_count(tokens_per_step)} tokens/step, {total} steps"
                  + (f", resuming at step {start}" if start else "") + f"; MFU vs {peak_src} "
                  f"{peak / 1e12:.2f} TFLOP/s")
    forward = compiled(model, device, progress) if cfg.compile else model
    crash_at = crash_point()
    meter = Throughput()
    t_start = time.perf_counter()
    tokens_done = 0
    meter.mark(0)
    model.train()
    step = start
    loss_val = float("nan")

    def checkpoint(at: int, loader_state: dict) -> None:
        save_checkpoint(stage_dir, at, model, opts, {
            "loader": loader_state, "train_seconds": prior_seconds + time.perf_counter() - t_start,
            "train_config": asdict(cfg), "label": label})

    try:
        for step in range(start, total):
            loader_state = loader.state_dict()  # where this step's data begins
            set_lr(opts, lr_factor(step, total, cfg.warmup_steps, cfg.schedule, cfg.final_lr_frac,
                                   cfg.decay_frac))
            loss_sum = 0.0
            for _ in range(cfg.grad_accum):
                x, y, m = loader.next_batch()
                x, y = x.to(device.torch, non_blocking=True), y.to(device.torch, non_blocking=True)
                m = None if m is None else m.to(device.torch, non_blocking=True)
                with device.autocast(), device.attention_backend():
                    loss = forward(x, y, m) / cfg.grad_accum
                loss.backward()
                loss_sum += loss.detach()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0
                                                       else float("inf"))
            for opt in opts:
                opt.step()
            model.zero_grad(set_to_none=True)
            tokens_done += tokens_per_step
            done = step + 1
            if done % cfg.log_every == 0 or done == total:
                loss_val = float(loss_sum)
                if not math.isfinite(loss_val):
                    raise ColossusError(f"loss became {loss_val} at step {done}: lower the learning rate")
                device.synchronize()
                meter.mark(tokens_done)
                tok_s = meter.tokens_per_s()
                mfu = tok_s * flops_per_token / peak
                eta = meter.seconds_per_step() / cfg.log_every * (total - done)
                elapsed = prior_seconds + time.perf_counter() - t_start
                progress.update(done, loss_val, tok_s, mfu, eta)
                log.write(step=done, loss=round(loss_val, 5), lr=opts[0].param_groups[0]["lr"],
                          grad_norm=round(float(grad_norm), 4), tokens_per_s=round(tok_s, 1),
                          mfu=round(mfu, 5), elapsed_s=round(elapsed, 2), eta_s=round(eta, 1))
            if val_loader is not None and cfg.eval_every and (done % cfg.eval_every == 0 or done == total):
                val = evaluate_loss(model, val_loader, device, batches=4)
                log.write(step=done, val_loss=round(val, 5))
                progress.note(f"{label} step {done}: val loss {val:.4f}")
            if done % cfg.ckpt_every == 0 and done < total:
                checkpoint(done, loader.state_dict())
            if crash_at == (label, done):
                progress.note(f"{label}: COLOSSUS_CRASH_AT={label}:{done}, killing this process")
                os.kill(os.getpid(), signal.SIGKILL)
    except KeyboardInterrupt:
        progress.done()
        if step > start:  # steps before `step` are complete; this one's gradients are dropped
            checkpoint(step, loader_state)
            progress.note(f"{label}: interrupted; checkpoint at step {step} saved, continue with --resume")
        raise
    checkpoint(total, loader.state_dict())
    progress.done()
    seconds = prior_seconds + time.perf_counter() - t_start
    steps_run = total - start
    tok_s = steps_run * tokens_per_step / max(time.perf_counter() - t_start, 1e-9)
    summary = {"steps": total, "train_seconds": round(seconds, 2), "final_loss": round(loss_val, 5),
               "tokens": total * tokens_per_step, "params": model.num_params(), "tokens_per_second": round(tok_s, 1),
               "flops_per_token": flops_per_token, "mfu": round(tok_s * flops_per_token / peak, 5),
               "device": device.name, "machine": machine(device)}
    (stage_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    progress.note(f"{label}: done in {fmt_duration(seconds)}, final loss {loss_val:.4f}")
    return summary
