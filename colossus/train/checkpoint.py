"""Training checkpoints, written atomically: a crash at any moment leaves the last complete one.

    STAGE/checkpoints/step_000400/model.safetensors   weights
    STAGE/checkpoints/step_000400/config.json         model shape
    STAGE/checkpoints/step_000400/optim.safetensors   optimizer moments and the RNG state
    STAGE/checkpoints/step_000400/state.json          step, loader position, optimizer hyper-parameters
    STAGE/checkpoints/latest                          the name of the newest complete checkpoint

A checkpoint is written into a temporary directory, flushed, then renamed; `latest` is replaced
only after that. The weights and config make every checkpoint a model directory as well."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from colossus.errors import ColossusError
from colossus.model.gpt import GPT
from colossus.model.io import CONFIG, WEIGHTS, load_weights, save_weights


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flatten_optimizers(opts: list[torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    tensors: dict[str, torch.Tensor] = {}
    meta = []
    for i, opt in enumerate(opts):
        sd = opt.state_dict()
        scalars = {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"opt{i}.{pid}.{k}"] = v.detach().contiguous().cpu()
                else:
                    scalars[f"{pid}.{k}"] = v
        meta.append({"param_groups": sd["param_groups"], "scalars": scalars})
    return tensors, meta


def unflatten_optimizers(opts: list[torch.optim.Optimizer], tensors: dict[str, torch.Tensor],
                         meta: list[dict]) -> None:
    if len(meta) != len(opts):
        raise ColossusError("checkpoint has a different optimizer set-up (AdamW vs Muon); resume with the same one")
    for i, (opt, m) in enumerate(zip(opts, meta, strict=True)):
        state: dict[int, dict] = {}
        for key, v in tensors.items():
            head, pid, k = key.split(".", 2)
            if head == f"opt{i}":
                state.setdefault(int(pid), {})[k] = v
        for key, v in m["scalars"].items():
            pid, k = key.split(".", 1)
            state.setdefault(int(pid), {})[k] = v
        opt.load_state_dict({"state": state, "param_groups": m["param_groups"]})


def save_checkpoint(stage_dir: Path, step: int, model: GPT, opts: list[torch.optim.Optimizer],
                    state: dict, keep: int = 2) -> Path:
    root = Path(stage_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:06d}"
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_weights(tmp / WEIGHTS, model)
    model.cfg.save(tmp / CONFIG)
    tensors, opt_meta = flatten_optimizers(opts)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, str(tmp / "optim.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizers": opt_meta}, indent=1))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    _fsync_dir(root)
    latest_tmp = root / "latest.tmp"
    latest_tmp.write_text(name + "\n")
    latest_tmp.replace(root / "latest")
    _fsync_dir(root)
    # prune older complete checkpoints, and temporaries left by a crash
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step_*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(stage_dir: Path) -> Path | None:
    root = Path(stage_dir) / "checkpoints"
    latest = root / "latest"
    if not latest.exists():
        return None
    path = root / latest.read_text().strip()
    if not path.is_dir():
        raise ColossusError(f"{latest} names {path.name}, which is missing: the checkpoint directory is damaged")
    return path


def load_checkpoint(path: Path, model: GPT, opts: list[torch.optim.Optimizer]) -> dict:
    """Restore weights, optimizer and RNG from a checkpoint; return its state.json."""
    for f in (WEIGHTS, CONFIG, "optim.safetensors", "state.json"):
        if not (path / f).exists():
            raise ColossusError(f"checkpoint {path} is incomplete: {f} is missing")
    load_weights(path / WEIGHTS, model)
    try:
        state = json.loads((path / "state.json").read_text())
        tensors = load_file(str(path / "optim.safetensors"))
    except (json.JSONDecodeError, SafetensorError, OSError) as e:
        raise ColossusError(f"checkpoint {path} is corrupt: {e}") from e
    torch.set_rng_state(tensors.pop("rng.cpu"))
    cuda_rng = tensors.pop("rng.cuda", None)
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_rng)
    device = next(model.parameters()).device
    unflatten_optimizers(opts, {k: v.to(device) for k, v in tensors.items()}, state.pop("optimizers"))
    return state
