"""The training stage's knobs (pretraining and chat fine-tuning share them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    steps: int = 1000
    """Optimizer steps (0: as many as `epochs` passes over the data take)."""
    epochs: float = 1.0
    """Passes over the data, when steps is 0."""
    batch_size: int = 32
    """Sequences per micro-batch on each rank."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 3e-3
    """AdamW learning rate for the block matrices and norms."""
    embed_lr: float = 3e-2
    """AdamW learning rate for the embedding table."""
    head_lr: float = 3e-3
    """AdamW learning rate for the output head."""
    muon: bool = False
    """Use Muon instead of AdamW for the block matrices."""
    muon_lr: float = 0.02
    weight_decay: float = 0.0
    warmup_steps: int = 50
    schedule: str = "wsd"
    """wsd (warmup, stable, linear decay), cosine, or constant."""
    decay_frac: float = 0.3
    """Share of the steps spent decaying (wsd)."""
    final_lr_frac: float = 0.05
    """Learning rate at the end, as a share of the base."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: off)."""
    log_every: int = 10
    eval_every: int = 100
    """Steps between validation losses (0: never)."""
    ckpt_every: int = 200
    """Steps between checkpoints (one is always written at the end)."""
    seed: int = 1337
    device: str = "auto"
    dtype: str = "auto"
    """auto (bf16 where the device supports it), bf16, fp16 or fp32."""
    compile: bool = False
    """Train through torch.compile (a faster step after a compile of some seconds; needs a C++ compiler on a
    CPU, and trains eagerly without one). Validation and checkpoints use the model itself."""
