"""Failures, checkpoint interval, goodput, the Monte Carlo run and energy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from colossus.plan.energy import LOAD_FACTOR, energy
from colossus.plan.hardware import Cluster, get_gpu
from colossus.plan.reliability import (
    daly_interval,
    expected_wall_s,
    finish_quantiles,
    reliability,
    simulate_run,
)


def test_llama3_interruption_rate_is_the_default():
    rel = reliability(Cluster(get_gpu("h100"), 16384), 405e9)
    assert rel.interruptions_per_day == pytest.approx(419 / 54)  # the paper's 54-day snapshot
    assert 0.9 < rel.goodput < 0.95  # the paper: more than 90% effective training time


def test_interruptions_grow_with_the_cluster():
    small = reliability(Cluster(get_gpu("h100"), 1000), 70e9)
    large = reliability(Cluster(get_gpu("h100"), 100_000), 70e9)
    assert large.interruptions_per_day == pytest.approx(100 * small.interruptions_per_day)
    assert large.goodput < small.goodput


def test_daly_interval_reduces_to_young_for_cheap_checkpoints():
    delta, mtbf = 10.0, 36_000.0
    assert daly_interval(delta, mtbf) == pytest.approx(math.sqrt(2 * delta * mtbf), rel=0.02)
    assert daly_interval(100_000.0, mtbf) == mtbf  # checkpoints slower than failures: checkpoint every MTBF


def test_monte_carlo_is_deterministic_with_a_seed():
    args = (30 * 86400.0, 600.0, 30.0, 600.0, 3 * 3600.0)
    first = simulate_run(*args, runs=300, seed=7)
    assert np.array_equal(first, simulate_run(*args, runs=300, seed=7))
    assert not np.array_equal(first, simulate_run(*args, runs=300, seed=8))


@pytest.mark.parametrize("mtbf_h", [0.05, 0.5, 3.0])
def test_monte_carlo_mean_matches_dalys_expected_time(mtbf_h):
    work, interval, write, restart, mtbf = 20 * 86400.0, 300.0, 5.0, 600.0, mtbf_h * 3600
    interval = daly_interval(write, mtbf)
    walls = simulate_run(work, interval, write, restart, mtbf, runs=2000, seed=0)
    assert walls.mean() == pytest.approx(expected_wall_s(work, interval, write, restart, mtbf), rel=0.01)
    assert (walls >= work).all()
    q = finish_quantiles(walls)
    assert q["p10"] <= q["p50"] <= q["p90"]


def test_energy_and_cost():
    cluster = Cluster(get_gpu("h100"), 10_000, pue=1.25, usd_per_kwh=0.1, usd_per_gpu_hour=2.0)
    e = energy(cluster, wall_days=10)
    assert e.power_mw == pytest.approx(10_000 * 1275 * LOAD_FACTOR * 1.25 / 1e6)
    assert e.energy_mwh == pytest.approx(e.power_mw * 240)
    assert e.energy_cost_usd == pytest.approx(e.energy_mwh * 100)
    assert e.gpu_cost_usd == pytest.approx(10_000 * 240 * 2.0)


def test_checkpoints_fall_between_whole_steps():
    cluster = Cluster(get_gpu("gb200"), 1_000_000)
    free = reliability(cluster, 1e12)
    stepped = reliability(cluster, 1e12, step_s=45.0)
    assert free.checkpoint_interval_min * 60 < 45  # Young/Daly alone would checkpoint mid-step
    assert stepped.checkpoint_interval_min * 60 == pytest.approx(45.0)
    assert stepped.goodput < free.goodput
