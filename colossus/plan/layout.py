"""What is trained (Workload) and how it is split over the GPUs (Layout); the rules a layout must obey."""

from __future__ import annotations

import math
from dataclasses import dataclass

from colossus.errors import ColossusError
from colossus.plan.models import ModelShape

RECOMPUTE = ("none", "selective", "full")
MAX_BATCH_ROUNDING = 1.10
"""The global batch is rounded up to whole microbatches on every DP rank, by at most 10%."""


@dataclass(frozen=True)
class Workload:
    """The training job, independent of the cluster."""

    model: ModelShape
    seq_len: int
    batch_tokens: float
    """Global batch in tokens (rounded to whole sequences)."""
    train_tokens: float
    precision: str = "bf16"
    """'bf16' or 'fp8' (FP8 matmuls, BF16 everything else)."""
    flash_attention: bool = True
    """False: attention scores are materialised (before fused attention kernels, ~2022)."""
    sequence_parallel: bool = True
    """False: norms, dropout and residuals run unsplit on every TP rank (Megatron before 2022)."""
    dropout: bool = False

    def __post_init__(self) -> None:
        if self.seq_len < 1:
            raise ColossusError(f"sequence length must be at least 1, not {self.seq_len}")
        if self.batch_tokens < self.seq_len:
            raise ColossusError(f"global batch of {self.batch_tokens:.0f} tokens is less than one sequence "
                                f"of {self.seq_len}")
        if self.train_tokens <= 0:
            raise ColossusError("tokens to train must be positive")
        if self.precision not in ("bf16", "fp8"):
            raise ColossusError(f"precision must be bf16 or fp8, not {self.precision!r}")

    @property
    def batch_seqs(self) -> int:
        return max(1, round(self.batch_tokens / self.seq_len))


@dataclass(frozen=True)
class Layout:
    """One way to split the job: tp x cp x pp x dp GPUs; ep is carved out of dp x cp for the experts."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    vpp: int = 1
    """Virtual stages per GPU (interleaved 1F1B schedule); 1 = plain 1F1B."""
    microbatch: int = 1
    """Sequences per microbatch."""
    recompute: str = "selective"
    zero: int = 1
    """1: optimizer states sharded over DP (distributed optimizer); 3: weights and gradients too (FSDP)."""

    @property
    def model_parallel(self) -> int:
        return self.tp * self.cp * self.pp

    @property
    def gpus(self) -> int:
        return self.model_parallel * self.dp

    def microbatches(self, work: Workload) -> int:
        """Microbatches per DP rank per step (the global batch rounded up to fill every rank)."""
        return math.ceil(work.batch_seqs / (self.dp * self.microbatch))

    def batch_seqs(self, work: Workload) -> int:
        return self.microbatches(work) * self.dp * self.microbatch

    def describe(self) -> str:
        parts = [f"tp={self.tp}", f"cp={self.cp}", f"pp={self.pp}", f"dp={self.dp}"]
        if self.ep > 1:
            parts.append(f"ep={self.ep}")
        if self.vpp > 1:
            parts.append(f"vpp={self.vpp}")
        parts += [f"mb={self.microbatch}", f"recompute={self.recompute}", f"zero={self.zero}"]
        return " ".join(parts)


def layout_problem(work: Workload, layout: Layout) -> str | None:
    """Why this layout cannot run the workload, or None. Memory is checked elsewhere."""
    m = work.model
    for name in ("tp", "pp", "dp", "cp", "ep", "vpp", "microbatch"):
        if getattr(layout, name) < 1:
            return f"{name} must be at least 1, not {getattr(layout, name)}"
    if m.n_head % layout.tp:
        return f"tp={layout.tp} does not divide the {m.n_head} attention heads"
    if layout.tp > m.n_kv_head and layout.tp % m.n_kv_head:
        return f"tp={layout.tp} cannot share {m.n_kv_head} KV heads evenly (needs a multiple of them)"
    if layout.pp > m.n_layer:
        return f"pp={layout.pp} is more pipeline stages than the {m.n_layer} layers"
    if layout.vpp > 1 and (layout.pp < 3 or layout.vpp > math.ceil(m.n_layer / layout.pp)):
        return f"vpp={layout.vpp} needs pp>=3 and at least one layer per virtual stage"
    if layout.vpp > 1 and layout.microbatches(work) < layout.pp:
        return f"vpp={layout.vpp} (interleaving) needs at least pp={layout.pp} microbatches per step"
    if layout.cp > 1 and work.seq_len % (2 * layout.cp):
        return f"cp={layout.cp} does not split a {work.seq_len}-token sequence into 2*cp balanced chunks"
    if not m.is_moe and layout.ep > 1:
        return f"ep={layout.ep} needs a mixture-of-experts model; {m.name} is dense"
    if m.n_experts % layout.ep:
        return f"ep={layout.ep} does not divide the {m.n_experts} experts"
    if (layout.dp * layout.cp) % layout.ep:
        return f"ep={layout.ep} must divide dp*cp={layout.dp * layout.cp} (experts spread over DP/CP ranks)"
    if layout.recompute not in RECOMPUTE:
        return f"recompute must be one of {', '.join(RECOMPUTE)}, not {layout.recompute!r}"
    if layout.zero not in (1, 3):
        return f"zero must be 1 (distributed optimizer) or 3 (FSDP), not {layout.zero}"
    wanted = work.batch_seqs
    if layout.dp * layout.microbatch > wanted * MAX_BATCH_ROUNDING:
        return (f"dp*microbatch={layout.dp * layout.microbatch} sequences is more than the global batch of "
                f"{wanted} sequences")
    if layout.batch_seqs(work) > wanted * MAX_BATCH_ROUNDING:
        return (f"the batch of {wanted} sequences does not split into whole microbatches over dp={layout.dp} "
                f"(it would grow to {layout.batch_seqs(work)})")
    return None


def check_layout(work: Workload, layout: Layout) -> None:
    problem = layout_problem(work, layout)
    if problem:
        raise ColossusError(problem)
