"""FLOP counts, the pipeline and the collectives of the step model."""

from __future__ import annotations

import math

import pytest

from colossus.plan.hardware import Cluster, get_gpu
from colossus.plan.layout import Layout, Workload, layout_problem
from colossus.plan.models import PRESETS, ModelShape, parse_count
from colossus.plan.step import collective, max_stage_load, step_time


def test_parameter_counts_match_the_published_sizes():
    assert PRESETS["llama3-405b"].params == pytest.approx(405e9, rel=0.01)
    assert PRESETS["llama3-70b"].params == pytest.approx(70.6e9, rel=0.01)
    assert PRESETS["llama3-8b"].params == pytest.approx(8.03e9, rel=0.01)
    assert PRESETS["gpt3-175b"].params == pytest.approx(175e9, rel=0.02)
    grok = PRESETS["grok-1"]
    assert grok.params == pytest.approx(314e9, rel=0.02)
    assert grok.active_params < grok.params / 3  # 2 of 8 experts per token
    assert PRESETS["dense-1t"].params == pytest.approx(1e12, rel=0.01)


def test_training_flops_are_6n_plus_attention():
    m = PRESETS["llama3-405b"]
    flops = m.model_flops_per_token(8192)
    six_n = 6 * (m.params - m.vocab_size * m.d_model)  # the input embedding is a lookup, not a matmul
    attention = 6 * m.n_layer * 2 * m.q_dim * (8192 + 1) / 2
    assert flops == pytest.approx(six_n + attention)


def test_interleaving_shrinks_the_bubble():
    work = Workload(PRESETS["llama3-405b"], 8192, 2048 * 8192, 15e12)
    cluster = Cluster(get_gpu("h100"), 16384)
    plain = step_time(work, cluster, Layout(tp=8, pp=16, dp=128, recompute="full"))
    interleaved = step_time(work, cluster, Layout(tp=8, pp=16, dp=128, vpp=4, recompute="full"))
    # 16 microbatches through 16 stages: bubble (p-1)/(v m) of the pipelined work.
    assert plain.pp_bubble / (plain.compute + plain.tp_comm) == pytest.approx(15 / 16, rel=0.02)
    assert interleaved.pp_bubble == pytest.approx(plain.pp_bubble / 4)
    assert interleaved.total < plain.total


def test_full_recompute_costs_about_a_third_more_compute():
    work = Workload(PRESETS["llama3-70b"], 8192, 1024 * 8192, 15e12)
    cluster = Cluster(get_gpu("h100"), 1024)
    none = step_time(work, cluster, Layout(tp=8, pp=4, dp=32, recompute="none"))
    full = step_time(work, cluster, Layout(tp=8, pp=4, dp=32, recompute="full"))
    assert full.hardware_flops / none.hardware_flops == pytest.approx(4 / 3, rel=0.03)
    assert 1.25 < full.compute / none.compute < 1.5  # and the forward's TP collectives again


def test_faster_gpu_means_shorter_step_and_higher_comm_share():
    work = Workload(PRESETS["llama3-70b"], 8192, 1024 * 8192, 15e12)
    layout = Layout(tp=8, pp=4, dp=32)
    a100 = step_time(work, Cluster(get_gpu("a100"), 1024), layout)
    b200 = step_time(work, Cluster(get_gpu("b200"), 1024), layout)
    assert b200.total < a100.total / 3
    assert b200.dp_comm / b200.total > a100.dp_comm / a100.total


def test_collective_bandwidth_and_latency_terms():
    link = (100e9, 1e-5)
    assert collective("allgather", 1e9, 1, link) == 0
    assert collective("allgather", 1e9, 8, link) == pytest.approx(7 / 8 * 1e9 / 100e9 + 1e-5 * 6)
    assert collective("allreduce", 1e9, 8, link) == pytest.approx(2 * 7 / 8 * 1e9 / 100e9 + 1e-5 * 6)


def test_stage_balance_moves_a_layer_for_the_head():
    assert max_stage_load(126, 16, 0.6) == 8  # Llama 3: 7 layers + head on the last stage, 8 elsewhere
    assert max_stage_load(96, 16, 0.35) == pytest.approx(6.35)
    assert max_stage_load(10, 1, 0.5) == 10.5


def test_layout_rules_explain_themselves():
    work = Workload(PRESETS["llama3-405b"], 8192, 2048 * 8192, 15e12)
    assert "does not divide the 128 attention heads" in layout_problem(work, Layout(tp=3, dp=1))
    assert "more pipeline stages" in layout_problem(work, Layout(pp=200))
    assert "mixture-of-experts" in layout_problem(work, Layout(ep=2, dp=2))
    assert layout_problem(work, Layout(tp=8, pp=16, dp=64)) is None


def test_counts_and_model_shapes_parse():
    assert parse_count("16M") == 16e6 and parse_count("15T") == 15e12 and parse_count("16Mi") == 2**24
    assert parse_count("2.5e6") == 2.5e6
    moe = ModelShape("m", 2, 64, 4, 4, 128, 100, n_experts=4, top_k=2)
    assert moe.active_params < moe.params
    assert math.isclose(moe.expert_params, 3 * 64 * 128)
