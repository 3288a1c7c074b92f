"""Optimizers and the learning-rate schedule.

AdamW for everything by default, with its own learning rate for the embedding and the output head;
optionally Muon (momentum, orthogonalised by Newton-Schulz) for the matrices inside the blocks."""

from __future__ import annotations

import math

import torch

from colossus.model.gpt import GPT


def orthogonalise(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately U V^T of g = U S V^T, by a quintic Newton-Schulz iteration tuned to push
    singular values towards 1 quickly (it does not converge exactly, and need not)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16() if g.is_cuda else g.float()
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # each matrix of a stack (experts) on its own
    for _ in range(steps):
        s = x @ x.mT
        x = a * x + (b * s + c * s @ s) @ x
    return (x.mT if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Momentum SGD whose update is orthogonalised: for weight matrices (or stacks of them: experts)."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                 ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                g = p.grad.lerp(buf, group["momentum"])  # Nesterov
                update = orthogonalise(g, group["ns_steps"])
                scale = max(1.0, p.size(-2) / p.size(-1)) ** 0.5
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"] * scale)


def build_optimizers(model: GPT, lr: float, embed_lr: float, head_lr: float, weight_decay: float,
                     muon: bool = False, muon_lr: float = 0.02, betas=(0.9, 0.95)) -> list[torch.optim.Optimizer]:
    matrices = [p for n, p in model.blocks.named_parameters() if p.dim() >= 2]
    vectors = [p for n, p in model.blocks.named_parameters() if p.dim() < 2] + list(model.norm.parameters())
    if model.cfg.copy_head:  # the copy head's gate: one row and its bias
        vectors += list(model.copy_gate.parameters())
    groups = [
        {"params": [model.embed.weight], "lr": embed_lr, "weight_decay": 0.0},
        *([] if model.lm_head.weight is model.embed.weight else
          [{"params": [model.lm_head.weight], "lr": head_lr, "weight_decay": weight_decay}]),  # tied: the embedding
        {"params": vectors, "lr": lr, "weight_decay": 0.0},
    ]
    opts: list[torch.optim.Optimizer] = []
    if muon:
        opts.append(Muon(matrices, lr=muon_lr, weight_decay=weight_decay))
    else:
        groups.append({"params": matrices, "lr": lr, "weight_decay": weight_decay})
    fused = next(model.parameters()).is_cuda
    opts.insert(0, torch.optim.AdamW(groups, betas=betas, eps=1e-8, fused=fused))
    for opt in opts:
        for g in opt.param_groups:
            g["base_lr"] = g["lr"]
    return opts


def lr_factor(step: int, total: int, warmup: int, schedule: str, final_frac: float, decay_frac: float) -> float:
    """Multiplier of the base learning rate at `step` (0-based) of `total`.

    cosine: warmup, then a cosine down to final_frac. wsd: warmup, constant, then a linear decay to
    final_frac over the last decay_frac of the steps. constant: warmup, then 1."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        t = (step - warmup) / max(1, total - warmup)
        return final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    if schedule == "wsd":
        start = total - int(decay_frac * total)
        if step < start:
            return 1.0
        t = (step - start) / max(1, total - start)
        return 1.0 - (1.0 - final_frac) * min(1.0, t)
    raise ValueError(f"unknown schedule {schedule!r}")


def set_lr(opts: list[torch.optim.Optimizer], factor: float) -> None:
    for opt in opts:
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
