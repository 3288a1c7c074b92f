"""The time of one training step, from the layout down to each matmul and each collective.

One transformer layer is costed for one microbatch on one GPU (matmuls on a roofline, attention,
memory-bound ops, and the TP/CP/EP collectives with what overlaps them); a pipeline stage is a
number of layers (plus the output head on the last one); a step is m microbatches through the
1F1B or interleaved pipeline, then the data-parallel gradient exchange and the optimizer.
GPU ranks are ordered tp, cp, pp, dp (as in Llama 3), experts on neighbouring ranks (as in Megatron).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from colossus.plan.hardware import (
    FLASH_BACKWARD_FACTOR,
    LINK_EFFICIENCY,
    MEMORY_BOUND_EFFICIENCY,
    MOE_IMBALANCE,
    NVLINK_LATENCY_S,
    STRAGGLER_SPREAD,
    Cluster,
)
from colossus.plan.layout import Layout, Workload
from colossus.plan.memory import layer_params_on_gpu, stage_layers


@dataclass(frozen=True)
class LayerCost:
    """One layer, one microbatch, one GPU; seconds (and FLOPs)."""

    fwd: float
    bwd: float
    bwd_matmul: float
    """The backward's matmuls, behind which the backward TP collectives run."""
    attn_fwd: float
    attn_bwd: float
    recompute: float
    tp_fwd: float
    tp_bwd: float
    cp_fwd: float
    cp_bwd: float
    ep_fwd: float
    ep_bwd: float
    hardware_flops: float

    @property
    def compute(self) -> float:
        return self.fwd + self.bwd + self.recompute

    @property
    def tp_exposed(self) -> float:
        return self.tp_fwd + max(0.0, self.tp_bwd - self.bwd_matmul)

    @property
    def cp_exposed(self) -> float:  # KV exchange runs beside the attention of the chunks already there
        return max(0.0, self.cp_fwd - self.attn_fwd) + max(0.0, self.cp_bwd - self.attn_bwd)

    @property
    def ep_exposed(self) -> float:  # token all-to-alls sit between router and experts: nothing to hide behind
        return self.ep_fwd + self.ep_bwd

    @property
    def total(self) -> float:
        return self.compute + self.tp_exposed + self.cp_exposed + self.ep_exposed


@dataclass(frozen=True)
class StepTime:
    """Seconds of one optimizer step, split by what the GPUs wait on, and its FLOPs."""

    compute: float
    tp_comm: float
    cp_comm: float
    ep_comm: float
    pp_bubble: float
    pp_comm: float
    dp_comm: float
    optimizer: float
    stragglers: float
    """Waiting for the slowest GPU at every synchronisation."""
    model_flops: float
    """FLOPs the model needs (6N + causal attention per token): the MFU numerator."""
    hardware_flops: float
    """FLOPs the GPUs execute, recomputation included."""
    tokens: float

    @property
    def total(self) -> float:
        return (self.compute + self.tp_comm + self.cp_comm + self.ep_comm + self.pp_bubble + self.pp_comm
                + self.dp_comm + self.optimizer + self.stragglers)

    def to_dict(self) -> dict[str, float]:
        keys = ("compute", "tp_comm", "cp_comm", "ep_comm", "pp_bubble", "pp_comm", "dp_comm", "optimizer",
                "stragglers")
        return {k: getattr(self, k) for k in keys} | {"total": self.total}


def link(cluster: Cluster, span: int) -> tuple[float, float]:
    """(bytes/s, latency per step) for a group whose ranks lie within `span` consecutive GPUs."""
    gpu = cluster.gpu
    if span <= gpu.nvlink_domain:
        return gpu.nvlink_gbps * 1e9 * LINK_EFFICIENCY, NVLINK_LATENCY_S
    return cluster.net_gbps * 1e9 * LINK_EFFICIENCY, cluster.net_latency_us * 1e-6


def collective(kind: str, nbytes: float, group: int, bw_lat: tuple[float, float]) -> float:
    """Seconds for a collective over `group` GPUs. nbytes: the full (gathered) tensor for all-gather,
    reduce-scatter and all-reduce; what one GPU sends for all-to-all. Bandwidth term as a ring; latency
    as a tree (log2 steps), as NCCL picks for large groups."""
    if group <= 1 or nbytes <= 0:
        return 0.0
    bw, latency = bw_lat
    traffic = nbytes * (group - 1) / group * (2 if kind == "allreduce" else 1)
    return traffic / bw + latency * 2 * math.ceil(math.log2(group))


def _matmul(flops: float, nbytes: float, peak: float, efficiency: float, hbm: float) -> float:
    """Roofline: compute-bound at the sustained matmul rate, or bound by HBM traffic."""
    return max(flops / (peak * efficiency), nbytes / hbm)


@lru_cache(maxsize=65536)
def layer_cost(work: Workload, cluster: Cluster, tp: int, cp: int, ep: int, microbatch: int,
               recompute: str) -> LayerCost:
    m, gpu = work.model, cluster.gpu
    d, f, s = m.d_model, m.d_ff, work.seq_len
    tokens = microbatch * s / cp  # query tokens of this GPU's share of the microbatch
    peak = (gpu.fp8_tflops if work.precision == "fp8" else gpu.bf16_tflops) * 1e12
    bf16_peak = gpu.bf16_tflops * 1e12
    hbm = gpu.hbm_tbps * 1e12 * MEMORY_BOUND_EFFICIENCY
    sp = tp if work.sequence_parallel else 1
    kv_split = min(tp, m.n_kv_head)

    # Matmuls as (rows, inner, cols, count); weights are split over TP.
    shapes = [(tokens, d, m.q_dim / tp + 2 * m.kv_dim / kv_split, 1), (tokens, m.q_dim / tp, d, 1)]
    up_cols = (m.mlp_matrices - 1) * f / tp
    routed = 1.0
    if m.is_moe:
        local = m.n_experts / ep
        routed = m.top_k * MOE_IMBALANCE  # expert work per token, on the busiest GPU
        rows = tokens * routed / local
        shapes += [(tokens, d, m.n_experts, 1), (rows, d, up_cols, local), (rows, f / tp, d, local)]
    else:
        shapes += [(tokens, d, up_cols, 1), (tokens, f / tp, d, 1)]
    matmul_fwd = matmul_flops = 0.0
    for rows, inner, cols, count in shapes:
        flops = 2 * rows * inner * cols * count
        matmul_fwd += _matmul(flops, 2 * (rows * inner + inner * cols + rows * cols) * count,
                              peak, gpu.gemm_efficiency, hbm)
        matmul_flops += flops

    # Attention core. Fused kernels skip the masked half; materialised scores compute the full square.
    heads = m.n_head / tp
    if work.flash_attention:
        attn_flops_fwd = 4 * tokens * m.hd * heads * (s + 1) / 2
        attn_fwd = attn_flops_fwd / (bf16_peak * gpu.attention_efficiency)
        attn_bwd = FLASH_BACKWARD_FACTOR * attn_fwd
        attn_flops = attn_flops_fwd * (1 + FLASH_BACKWARD_FACTOR)
    else:
        attn_flops_fwd = 4 * tokens * m.hd * heads * s
        scores = heads * tokens * s  # elements of the score matrix
        gemms = 2 * _matmul(attn_flops_fwd / 2, 2 * (2 * tokens * m.hd * heads + scores), bf16_peak,
                            gpu.gemm_efficiency, hbm)
        softmax = scores * (4 + (5 if work.dropout else 0)) / hbm  # softmax (and dropout) passes
        attn_fwd = gemms + softmax
        attn_bwd = 2 * attn_fwd
        attn_flops = 3 * attn_flops_fwd

    # Memory-bound ops, bytes per token: rotary, MLP activation (and MoE permutes), norms, residuals, dropout.
    act = (6 if m.gated_mlp else 4) * f / tp * routed + (8 * m.top_k * d if m.is_moe else 0)
    split_bytes = 4 * (m.q_dim / tp + m.kv_dim / kv_split) + act
    unsplit_bytes = 8 * d + 12 * d + (10 * d if work.dropout else 0)
    mem_fwd = tokens * (split_bytes + unsplit_bytes / sp) / hbm

    fwd = matmul_fwd + attn_fwd + mem_fwd
    bwd_matmul = 2 * matmul_fwd
    bwd = bwd_matmul + attn_bwd + 2 * mem_fwd
    hardware_flops = 3 * matmul_flops + attn_flops

    # Collectives of one layer on one microbatch.
    act_bytes = tokens * d * 2
    tp_link = link(cluster, tp)
    if work.sequence_parallel:  # two all-gathers and two reduce-scatters each way
        tp_one_way = 4 * collective("allgather", act_bytes, tp, tp_link)
    else:  # two all-reduces each way
        tp_one_way = 2 * collective("allreduce", act_bytes, tp, tp_link)
    kv_bytes = cp * tokens * 2 * m.kv_dim / kv_split * 2  # the whole sequence's K and V, this GPU's heads
    cp_fwd = collective("allgather", kv_bytes, cp, link(cluster, tp * cp))
    cp_bwd = 2 * cp_fwd  # gather K, V again; reduce-scatter their gradients
    dispatch = tokens / sp * m.top_k * d * 2  # each TP rank sends its share of the routed tokens
    a2a = 2 * collective("alltoall", dispatch, ep, link(cluster, tp * ep)) if ep > 1 else 0.0

    if recompute == "full":
        redo = fwd + tp_one_way + max(0.0, cp_fwd - attn_fwd) + a2a
        hardware_flops += matmul_flops + attn_flops_fwd
    elif recompute == "selective":  # norms and the MLP activation again; materialised attention again
        redo = tokens * (8 * d / sp + act) / hbm
        if not work.flash_attention:
            redo += attn_fwd
            hardware_flops += attn_flops_fwd
    else:
        redo = 0.0
    return LayerCost(fwd, bwd, bwd_matmul, attn_fwd, attn_bwd, redo, tp_one_way, tp_one_way,
                     cp_fwd, cp_bwd, a2a, a2a, hardware_flops)


def head_cost(work: Workload, cluster: Cluster, tp: int, cp: int, microbatch: int) -> tuple[float, float]:
    """(seconds, FLOPs) of the output head and the loss for one microbatch: forward and backward."""
    m, gpu = work.model, cluster.gpu
    tokens = microbatch * work.seq_len / cp
    peak = (gpu.fp8_tflops if work.precision == "fp8" else gpu.bf16_tflops) * 1e12
    hbm = gpu.hbm_tbps * 1e12 * MEMORY_BOUND_EFFICIENCY
    cols = m.vocab_size / tp
    flops = 2 * tokens * m.d_model * cols
    fwd = _matmul(flops, 2 * (tokens * m.d_model + m.d_model * cols + tokens * cols), peak,
                  gpu.gemm_efficiency, hbm)
    loss = 14 * tokens * cols / hbm  # fp32 logits written, read for softmax, gradient written
    return 3 * fwd + loss, 3 * flops


def max_stage_load(n_layer: int, pp: int, head: float) -> float:
    """Work of the busiest stage in layers, when layers are placed to balance the head (Llama 3 moved
    one layer off the last stage for it)."""
    if pp == 1:
        return n_layer + head
    best = math.inf
    for last in range(max(1, n_layer // pp - 2), math.ceil(n_layer / pp) + 1):
        rest = n_layer - last
        if rest >= pp - 1:
            best = min(best, max(last + head, math.ceil(rest / (pp - 1))))
    return best


def step_time(work: Workload, cluster: Cluster, layout: Layout) -> StepTime:
    m = work.model
    tp, cp, pp, dp, v = layout.tp, layout.cp, layout.pp, layout.dp, layout.vpp
    mb = layout.microbatches(work)
    lc = layer_cost(work, cluster, tp, cp, layout.ep, layout.microbatch, layout.recompute)
    head_s, head_flops = head_cost(work, cluster, tp, cp, layout.microbatch)
    load = max_stage_load(m.n_layer, pp, head_s / lc.total)
    per_mb = load * lc.total  # one microbatch through the busiest stage, forward and backward
    steady = mb * load  # layer-microbatches of the busiest stage in one step

    # Pipeline: fill and drain cost (p-1)/v microbatch slots; activations hop between stages.
    bubble = (pp - 1) / v * per_mb
    pp_comm = 0.0
    if pp > 1:
        sp = tp if work.sequence_parallel else 1
        hop_bytes = layout.microbatch * work.seq_len / cp * m.d_model * 2 / sp
        bw, latency = link(cluster, tp * cp * pp)
        hop = hop_bytes / bw + latency
        pp_comm = 2 * (pp - 1) * hop + mb * max(0.0, 2 * v * hop - per_mb)

    # Data parallel: reduce-scatter fp32 gradients, all-gather bf16 weights, over dp*cp ranks
    # (experts over dp*cp/ep), overlapped with one microbatch's backward (resp. forward) of the stage.
    dense, expert = layer_params_on_gpu(work, layout)
    layers = stage_layers(m.n_layer, pp)
    vocab = m.vocab_size * m.d_model / tp
    dense_params, expert_params = layers * dense + vocab, layers * expert
    group, expert_group = dp * cp, max(1, dp * cp // layout.ep)
    dp_link = link(cluster, layout.gpus)
    reduce = (collective("reducescatter", 4 * dense_params, group, dp_link)
              + collective("reducescatter", 4 * expert_params, expert_group, dp_link))
    gather = (collective("allgather", 2 * dense_params, group, dp_link)
              + collective("allgather", 2 * expert_params, expert_group, dp_link))
    fwd_window, bwd_window = load * lc.fwd, load * lc.bwd
    if layout.zero == 1:
        dp_comm = max(0.0, reduce - bwd_window) + max(0.0, gather - fwd_window)
    else:  # FSDP gathers the weights for every microbatch's forward and backward
        dp_comm = mb * (max(0.0, gather - fwd_window) + max(0.0, gather + reduce - bwd_window))
    sharded = dense_params / group + expert_params / expert_group
    optimizer = 30 * sharded / (cluster.gpu.hbm_tbps * 1e12 * MEMORY_BOUND_EFFICIENCY)  # Adam: ~30 B/param

    busy = steady * lc.total + bubble + pp_comm + dp_comm + optimizer
    stragglers = busy * STRAGGLER_SPREAD * math.sqrt(2 * math.log(layout.gpus)) if layout.gpus > 1 else 0.0
    tokens = layout.batch_seqs(work) * work.seq_len
    # Every microbatch is worked on by tp*cp GPUs, each doing the per-GPU share costed above.
    shares = layout.batch_seqs(work) / layout.microbatch * tp * cp
    return StepTime(
        compute=steady * lc.compute,
        tp_comm=steady * lc.tp_exposed,
        cp_comm=steady * lc.cp_exposed,
        ep_comm=steady * lc.ep_exposed,
        pp_bubble=bubble,
        pp_comm=pp_comm,
        dp_comm=dp_comm,
        optimizer=optimizer,
        stragglers=stragglers,
        model_flops=tokens * m.model_flops_per_token(work.seq_len),
        hardware_flops=shares * (m.n_layer * lc.hardware_flops + head_flops),
        tokens=tokens,
    )
