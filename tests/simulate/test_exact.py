"""The exact revenue distribution equals enumeration, agrees with sampling, and handles the edges."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tercap.simulate.exact import RevenueDistribution, kolmogorov_smirnov, revenue_distribution

GRID = 250.0
TRIALS = 100_000


def random_deals(seed: int, count: int, max_cells: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Win probabilities and amounts already on the grid (some deals certain, some hopeless)."""
    rng = np.random.default_rng(seed)
    probability = rng.uniform(0, 1, count)
    probability[rng.random(count) < 0.15] = 0.0
    probability[rng.random(count) < 0.15] = 1.0
    amount = GRID * rng.integers(0, max_cells + 1, count)
    return probability, amount


def enumerated_pmf(probability: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """The pmf over grid cells by summing over all 2^n won/lost outcomes."""
    count = probability.size
    won = (np.arange(2**count)[:, None] >> np.arange(count)) & 1
    outcome_probability = np.where(won == 1, probability, 1 - probability).prod(axis=1)
    cells = won @ np.rint(amount / GRID).astype(np.int64)
    return np.bincount(cells, outcome_probability, minlength=int(np.rint(amount.sum() / GRID)) + 1)


@pytest.fixture(scope="module")
def twenty_deals() -> RevenueDistribution:
    probability, amount = random_deals(seed=99, count=20)
    return revenue_distribution(probability, amount, GRID)


@pytest.mark.parametrize("seed, count", [(0, 1), (1, 2), (2, 3), (3, 5), (4, 7), (5, 9), (6, 10), (7, 10)])
def test_equals_enumeration_of_all_outcomes(seed, count):
    probability, amount = random_deals(seed, count)
    dist = revenue_distribution(probability, amount, GRID)
    expected = enumerated_pmf(probability, amount)
    # The support stops at the largest revenue that can happen (deals with p = 0 add no cells).
    expected_support = np.rint(amount[probability > 0].sum() / GRID).astype(int) + 1
    assert np.abs(expected[expected_support:]).max(initial=0.0) == 0.0
    np.testing.assert_allclose(dist.pmf, expected[:expected_support], rtol=0, atol=1e-12)
    assert dist.pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert dist.rounding_error == 0.0


def test_mean_is_sum_of_weighted_amounts(twenty_deals):
    probability, amount = random_deals(seed=99, count=20)
    assert twenty_deals.mean() == pytest.approx(float(probability @ amount), rel=1e-12)


def test_off_grid_amounts_are_rounded_to_the_nearest_multiple():
    rng = np.random.default_rng(5)
    probability, amount = rng.uniform(0.1, 0.9, 30), rng.uniform(0, 20_000, 30)
    dist = revenue_distribution(probability, amount, GRID)
    rounded = GRID * np.rint(amount / GRID)
    assert dist.rounding_error == pytest.approx(np.abs(amount - rounded).sum())
    assert dist.rounding_error <= amount.size * GRID / 2
    assert dist.mean() == pytest.approx(float(probability @ rounded), rel=1e-12)
    assert abs(dist.mean() - float(probability @ amount)) <= dist.rounding_error


def test_quantile_cdf_and_prob_at_least_agree(twenty_deals):
    dist = twenty_deals
    levels = np.linspace(0, 1, 401)
    quantiles = dist.quantile(levels)
    assert np.all(np.diff(quantiles) >= 0)
    assert np.all(dist.cdf(quantiles) >= levels)
    below = quantiles - GRID
    assert np.all(dist.cdf(below[below >= 0]) < levels[below >= 0])
    values = dist.values
    np.testing.assert_allclose(dist.prob_at_least(values), 1 - dist.cdf(values - GRID), atol=1e-12)
    np.testing.assert_allclose(dist.cdf(values), np.cumsum(dist.pmf), atol=1e-12)
    # Between grid values nothing changes; revenue below 0 or above the support has no mass.
    np.testing.assert_array_equal(dist.cdf(values + GRID / 2), dist.cdf(values))
    np.testing.assert_array_equal(dist.prob_at_least(values - GRID / 2), dist.prob_at_least(values))
    assert dist.cdf(-1.0) == 0.0 and dist.cdf(np.inf) == 1.0 and dist.cdf(values[-1]) == 1.0
    assert dist.prob_at_least(0.0) == 1.0 and dist.prob_at_least(values[-1] + 1) == 0.0
    assert dist.quantile(1.0) == values[np.flatnonzero(dist.pmf)[-1]]


def test_vectorised_shapes_and_scalar_floats(twenty_deals):
    grid_of_x = np.arange(12.0).reshape(3, 4) * 1_000
    for method in (twenty_deals.cdf, twenty_deals.prob_at_least):
        assert method(grid_of_x).shape == (3, 4)
        assert isinstance(method(1_000.0), float)
    assert twenty_deals.quantile(np.full((2, 5), 0.5)).shape == (2, 5)
    assert isinstance(twenty_deals.quantile(0.5), float)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        twenty_deals.quantile(1.5)


def test_float_noise_counts_as_the_grid_value():
    dist = revenue_distribution(np.array([0.5, 0.5]), np.array([0.1, 0.2]), grid=0.1)
    assert dist.cdf(0.1 + 0.2) == 1.0  # 0.30000000000000004
    assert dist.prob_at_least(0.1 + 0.2) == 0.25


def test_own_samples_match_the_distribution(twenty_deals):
    draws = twenty_deals.sample(np.random.default_rng(7), TRIALS)
    assert draws.shape == (TRIALS,)
    assert twenty_deals.pmf[np.rint(draws / GRID).astype(int)].min() > 0
    assert kolmogorov_smirnov(draws, twenty_deals) < 0.01
    np.testing.assert_array_equal(draws, twenty_deals.sample(np.random.default_rng(7), TRIALS))


def test_plain_bernoulli_simulation_matches_the_distribution():
    probability, amount = random_deals(seed=3, count=30, max_cells=400)
    dist = revenue_distribution(probability, amount, GRID)
    won = np.random.default_rng(11).random((TRIALS, probability.size)) < probability
    revenue = won @ amount
    assert kolmogorov_smirnov(revenue, dist) < 0.01
    standard_error = revenue.std(ddof=1) / np.sqrt(TRIALS)
    assert abs(revenue.mean() - float(probability @ amount)) < 3 * standard_error
    assert dist.mean() == pytest.approx(float(probability @ amount), rel=1e-12)


def test_kolmogorov_smirnov_on_discrete_steps():
    coin = revenue_distribution(np.array([0.5]), np.array([100.0]), grid=100.0)
    assert kolmogorov_smirnov(np.array([0.0, 100.0]), coin) == 0.0
    assert kolmogorov_smirnov(np.array([0.0, 0.0, 0.0, 100.0]), coin) == pytest.approx(0.25)
    assert kolmogorov_smirnov(np.array([100.0, 100.0]), coin) == pytest.approx(0.5)  # at 0: 0 vs 0.5
    zero = revenue_distribution(np.zeros(0), np.zeros(0), grid=100.0)
    assert kolmogorov_smirnov(np.array([50.0]), zero) == 1.0  # below 50 the sample has nothing
    assert kolmogorov_smirnov(np.array([-50.0, 0.0]), zero) == 0.5


def test_kolmogorov_smirnov_equals_sup_over_a_dense_mesh():
    rng = np.random.default_rng(2)
    dist = revenue_distribution(rng.uniform(0, 1, 6), 100.0 * rng.integers(1, 6, 6), grid=100.0)
    samples = np.concatenate([dist.sample(rng, 40), rng.uniform(-50, 1_800, 10)])
    points = np.union1d(dist.values, samples)
    mesh = np.concatenate([points, points - 1e-6, [points.max() + 1]])
    empirical = np.searchsorted(np.sort(samples), mesh, side="right") / samples.size
    assert kolmogorov_smirnov(samples, dist) == pytest.approx(np.abs(empirical - dist.cdf(mesh)).max(), abs=1e-12)


def test_no_deals_is_a_point_mass_at_zero():
    dist = revenue_distribution(np.zeros(0), np.zeros(0), grid=GRID)
    np.testing.assert_array_equal(dist.pmf, [1.0])
    assert dist.mean() == 0.0 and dist.quantile(0.5) == 0.0
    assert dist.prob_at_least(0.0) == 1.0 and dist.prob_at_least(1.0) == 0.0
    np.testing.assert_array_equal(dist.sample(np.random.default_rng(0), 5), np.zeros(5))


def test_hopeless_and_certain_deals():
    hopeless = revenue_distribution(np.array([0.0, 0.0]), np.array([5_000.0, 750.0]), grid=GRID)
    np.testing.assert_array_equal(hopeless.pmf, [1.0])
    certain = revenue_distribution(np.array([1.0, 0.0, 1.0]), np.array([500.0, 9_000.0, 250.0]), grid=GRID)
    np.testing.assert_array_equal(certain.pmf, [0.0, 0.0, 0.0, 1.0])
    assert certain.cdf(749.0) == 0.0 and certain.cdf(750.0) == 1.0 and certain.quantile(0.01) == 750.0
    assert certain.prob_at_least(750.0) == 1.0 and certain.prob_at_least(751.0) == 0.0
    mixed = revenue_distribution(np.array([1.0, 0.25]), np.array([500.0, 250.0]), grid=GRID)
    np.testing.assert_allclose(mixed.pmf, [0.0, 0.0, 0.75, 0.25])


def test_many_likely_deals_stay_finite():
    dist = revenue_distribution(np.full(2_000, 0.999), np.full(2_000, GRID), grid=GRID)
    assert np.isfinite(dist.pmf).all()
    assert dist.mean() == pytest.approx(2_000 * 0.999 * GRID, rel=1e-9)
    assert dist.pmf[-1] == pytest.approx(0.999**2_000, rel=1e-9)


def test_huge_support_is_refused():
    with pytest.raises(ValueError, match=r"20,000,000 cells .* grid of at least 200"):
        revenue_distribution(np.array([0.5, 0.5]), np.array([1e9, 1e9]), grid=100.0)
    with pytest.raises(ValueError, match="cells"):
        revenue_distribution(np.array([0.5]), np.array([1_000.0]), grid=1.0, max_cells=999)


@pytest.mark.parametrize("probability, amount, grid, message", [
    ([0.5, 1.2], [1.0, 1.0], 1.0, "probabilities"),
    ([0.5], [-1.0], 1.0, "non-negative"),
    ([0.5], [np.nan], 1.0, "finite"),
    ([0.5, 0.5], [1.0], 1.0, "same length"),
    ([0.5], [1.0], 0.0, "grid"),
])
def test_bad_deals_are_refused(probability, amount, grid, message):
    with pytest.raises(ValueError, match=message):
        revenue_distribution(np.array(probability), np.array(amount), grid)


def test_distribution_is_immutable(twenty_deals):
    with pytest.raises(ValueError, match="read-only"):
        twenty_deals.pmf[0] = 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        twenty_deals.grid = 1.0  # type: ignore[misc]
