"""Memory per GPU: what fits and what does not, and how each choice moves the breakdown."""

from __future__ import annotations

import pytest

from colossus.errors import ColossusError
from colossus.plan.hardware import Cluster, get_gpu
from colossus.plan.layout import Layout, Workload
from colossus.plan.memory import memory_per_gpu
from colossus.plan.models import PRESETS
from colossus.plan.search import best_plans

H100 = get_gpu("h100")


def llama405(seq: int = 8192) -> Workload:
    return Workload(PRESETS["llama3-405b"], seq, 2048 * seq, 15e12)


def test_405b_does_not_fit_on_one_80gb_gpu_without_model_parallelism():
    mem = memory_per_gpu(llama405(), Layout(tp=1, pp=1, dp=16384, recompute="full"), H100)
    assert mem.weights > 700  # 405B bf16 weights alone: ~756 GiB
    assert mem.total > H100.hbm_gib
    with pytest.raises(ColossusError, match="does not fit"):
        best_plans(llama405(), Cluster(H100, 16384), {"tp": 1, "pp": 1, "zero": 1})
    with pytest.raises(ColossusError, match="does not fit"):
        best_plans(llama405(), Cluster(H100, 64), {"tp": 1, "pp": 1})


def test_fsdp_over_thousands_of_gpus_holds_405b_without_model_parallelism():
    fsdp = memory_per_gpu(llama405(), Layout(tp=1, pp=1, dp=1024, cp=16, recompute="full", zero=3), H100)
    assert fsdp.weights + fsdp.grads + fsdp.optimizer < 1
    assert fsdp.total < H100.hbm_gib


def test_llama3_layout_fits_on_h100():
    mem = memory_per_gpu(llama405(), Layout(tp=8, pp=16, dp=64, vpp=8, recompute="selective"), H100)
    assert mem.total < H100.hbm_gib
    # bf16 weights of 1/128 of the model, fp32 gradients twice that.
    assert mem.weights == pytest.approx(2 * 405.8e9 / 128 / 2**30, rel=0.1)
    assert mem.grads == pytest.approx(2 * mem.weights)


def test_recomputation_trades_memory_for_time():
    act = {rc: memory_per_gpu(llama405(), Layout(tp=8, pp=16, dp=64, recompute=rc), H100).activations
           for rc in ("none", "selective", "full")}
    assert act["none"] > act["selective"] > act["full"]


def test_sharding_cuts_optimizer_and_weights():
    work = Workload(PRESETS["llama3-70b"], 8192, 1024 * 8192, 15e12)
    zero1 = memory_per_gpu(work, Layout(tp=8, pp=1, dp=64, zero=1), H100)
    fsdp = memory_per_gpu(work, Layout(tp=8, pp=1, dp=64, zero=3), H100)
    assert fsdp.weights < zero1.weights / 10 and fsdp.grads < zero1.grads / 10
    assert zero1.optimizer == pytest.approx(12 / 64 / 2 * zero1.weights, rel=0.01)


def test_context_parallel_splits_activations_of_long_sequences():
    work = llama405(131072)
    one = memory_per_gpu(work, Layout(tp=8, pp=16, dp=8, cp=1, recompute="full"), H100)
    sixteen = memory_per_gpu(work, Layout(tp=8, pp=16, dp=8, cp=16, recompute="full"), H100)
    assert sixteen.activations < one.activations / 8


def test_moe_experts_spread_over_expert_parallel_ranks():
    work = Workload(PRESETS["grok-1"], 8192, 1024 * 8192, 15e12)
    one = memory_per_gpu(work, Layout(tp=8, pp=8, dp=8, ep=1), H100)
    eight = memory_per_gpu(work, Layout(tp=8, pp=8, dp=8, ep=8), H100)
    assert eight.weights < one.weights / 4
