"""Scores match their definitions: CRPS against the normal closed form, pinball by hand, PIT."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tercap.pipeline.scores import crps, pinball_loss, pit


def test_crps_of_normal_samples_matches_the_closed_form():
    samples = np.random.default_rng(1).normal(10.0, 2.0, 200_000)
    for actual in (10.0, 13.0, 4.0):
        z = (actual - 10.0) / 2.0
        exact = 2.0 * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))
        assert crps(samples, actual) == pytest.approx(exact, rel=0.01)


def test_crps_of_one_number_is_the_absolute_error():
    assert crps(np.array([7.0]), 10.0) == pytest.approx(3.0)


def test_pinball_loss_by_hand():
    samples = np.arange(101.0)  # quantiles 10, 50, 90
    assert pinball_loss(samples, 70.0) == pytest.approx((6.0 + 10.0 + 2.0) / 3)


def test_pit_counts_ties_by_the_uniform():
    assert pit(np.array([0.0, 0.0, 1.0, 2.0]), 0.0, uniform=0.5) == pytest.approx(0.25)
    assert pit(np.array([1.0, 2.0, 3.0, 4.0]), 3.5) == pytest.approx(0.75)
