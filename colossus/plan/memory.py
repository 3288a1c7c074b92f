"""Memory per GPU: weights, gradients, optimizer states, activations and buffers, on the fullest stage.

Mixed precision as in Megatron and Llama 3: bf16 weights, fp32 gradient accumulation, fp32 Adam
(master copy, first and second moment: 12 bytes per parameter). Activations follow Korthikanti
et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", section 4), extended
to GQA, gated MLPs, MoE and fused attention.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from colossus.plan.hardware import GPU, MOE_IMBALANCE
from colossus.plan.layout import Layout, Workload

GIB = 2**30
CUDA_RESERVED_GIB = 3.0
"""CUDA context, NCCL channels and cuBLAS workspaces."""
FRAGMENTATION = 0.05
"""The caching allocator loses ~5% of what it hands out to fragmentation."""


@dataclass(frozen=True)
class MemoryBreakdown:
    """GiB on the fullest GPU."""

    weights: float
    grads: float
    optimizer: float
    activations: float
    buffers: float

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer + self.activations + self.buffers

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "total": self.total}


def layer_params_on_gpu(work: Workload, layout: Layout) -> tuple[float, float]:
    """(dense, expert) parameters of one layer held by one GPU. KV heads are replicated when tp > n_kv."""
    m = work.model
    kv_split = min(layout.tp, m.n_kv_head)
    attn = (m.d_model * m.q_dim + m.q_dim * m.d_model) / layout.tp + 2 * m.d_model * m.kv_dim / kv_split
    if not m.is_moe:
        return attn + m.expert_params / layout.tp, 0.0
    experts = m.n_experts / layout.ep * m.expert_params / layout.tp
    return attn + m.router_params, experts


def activation_bytes_per_token(work: Workload, layout: Layout, recompute: str) -> float:
    """Bytes one layer keeps for the backward, per token of a microbatch, on one GPU."""
    m, t = work.model, layout.tp
    d, f = m.d_model, m.d_ff
    if recompute == "full":  # only the layer's input survives
        return 2 * d / (t if work.sequence_parallel else 1)
    kv_split = min(t, m.n_kv_head)
    # Norm inputs and outputs, dropout masks: split over TP only with sequence parallelism.
    norms = 4 * d if recompute == "selective" else 8 * d
    unsplit = norms + (2 * d if work.dropout else 0)
    # Q, K, V and the attention output, split over TP heads.
    split = 2 * (m.q_dim / t + 2 * m.kv_dim / kv_split) + 2 * m.q_dim / t
    # MLP intermediates, per routed token: gate and up (and their product) or fc1 (and its activation).
    kept = (2 if m.gated_mlp else 1) if recompute == "selective" else m.mlp_matrices
    split += 2 * kept * f / t * (m.top_k * MOE_IMBALANCE if m.is_moe else 1)
    if not work.flash_attention and recompute == "none":
        # Materialised scores: softmax output (2 bytes), and with dropout its mask (1) and output (2).
        split += (5 if work.dropout else 2) * m.n_head / t * work.seq_len
    return split + unsplit / (t if work.sequence_parallel else 1)


def stage_layers(n_layer: int, pp: int) -> int:
    """Layers on the fullest pipeline stage."""
    return math.ceil(n_layer / pp)


def layer_microbatches_in_flight(work: Workload, layout: Layout) -> float:
    """Layer-microbatches whose activations the first stage holds at its peak (1F1B or interleaved)."""
    p, v, m = layout.pp, layout.vpp, layout.microbatches(work)
    if v == 1:
        return min(m, p) * stage_layers(work.model.n_layer, p)
    # Megatron's interleaved schedule warms up with (p-1)*2 + (v-1)*p chunks on the first rank.
    chunks = min(m * v, (p - 1) * 2 + (v - 1) * p + 1)
    return chunks * math.ceil(work.model.n_layer / (p * v))


def memory_per_gpu(work: Workload, layout: Layout, gpu: GPU) -> MemoryBreakdown:
    m = work.model
    dense, expert = layer_params_on_gpu(work, layout)
    layers = stage_layers(m.n_layer, layout.pp)
    vocab_shard = m.vocab_size * m.d_model / layout.tp  # embedding on the first stage, head on the last
    dense_params = layers * dense + vocab_shard
    expert_params = layers * expert
    shard = layout.dp * layout.cp
    expert_shard = max(1, shard // layout.ep)

    if layout.zero == 1:
        weights = 2 * (dense_params + expert_params)
        grads = 4 * (dense_params + expert_params)
        gathered = 0.0
    else:  # FSDP: everything sharded, two layers gathered at a time (one computing, one prefetched)
        weights = 2 * (dense_params / shard + expert_params / expert_shard)
        grads = 4 * (dense_params / shard + expert_params / expert_shard)
        gathered = 2 * 2 * (dense + expert) + 4 * (dense + expert)
    optimizer = 12 * (dense_params / shard + expert_params / expert_shard)

    tokens = layout.microbatch * work.seq_len / layout.cp  # tokens of one microbatch on this GPU
    stored = activation_bytes_per_token(work, layout, layout.recompute) * tokens
    working = 0.0
    if layout.recompute == "full":  # the layer being recomputed holds its full activations
        working = activation_bytes_per_token(work, layout, "none") * tokens
    logits = 8 * tokens * m.vocab_size / layout.tp  # fp32 logits and their gradient
    first = stored * layer_microbatches_in_flight(work, layout) + working
    # The last stage holds a single microbatch in flight, but also the logits.
    last = stored * stage_layers(m.n_layer, layout.pp) + working + logits
    activations = first + logits if layout.pp == 1 else max(first, last)
    used = weights + grads + optimizer + activations + gathered
    buffers = CUDA_RESERVED_GIB * GIB + gathered + FRAGMENTATION * used
    return MemoryBreakdown(weights / GIB, grads / GIB, optimizer / GIB, activations / GIB, buffers / GIB)
