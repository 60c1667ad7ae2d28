"""The Monte Carlo kernel against exact figures, the copula's promises, and reproducibility."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri

import tercap
from tercap.cli import main
from tercap.simulate import build_book, simulate
from tercap.simulate.kernel import block_seeds, simulate_blocks
from tests.conftest import REPO


@pytest.fixture(scope="module")
def example() -> tercap.Scenario:
    return tercap.load(REPO / "scenarios" / "acme_fy27.yaml")


@pytest.fixture(scope="module")
def example_book(example):
    accounts = example.accounts
    return build_book(example, pd.Series(accounts["current_owner"].to_numpy(dtype=object),
                                         index=accounts["account_id"]))


def open_deals_only(book, probabilities: np.ndarray, amounts: np.ndarray, rho: float = 0.0):
    """A book of independent-looking open deals on one rep that all close inside the period."""
    count = len(probabilities)
    close = np.zeros((count, book.months + 1))
    close[:, 0] = 1.0
    classes, deal_class = np.unique(probabilities, return_inverse=True)  # one move each
    return dataclasses.replace(
        book, deal_rep=np.zeros(count, dtype=np.int64), deal_class=deal_class.astype(np.int64),
        class_conversions=tuple(np.array([p]) for p in classes), class_quarter=np.zeros(classes.size, np.int64),
        deal_amount=np.asarray(amounts, dtype=float), deal_close_month=close, cell_rep=np.zeros(0, dtype=np.int64),
        cell_median_amount=np.zeros(0), cell_sigma=np.zeros(0), cell_opportunities=np.zeros((0, book.months)),
        cell_close_month=np.zeros((0, book.months, book.months)), correlation=rho, monthly_hazard=0.0)


def run(book, trials: int, seed: int = 1):
    return simulate_blocks(book, block_seeds(seed, -(-trials // 256)), trials, 0)


def exact_pmf(probabilities: np.ndarray, amounts: np.ndarray) -> dict[float, float]:
    """Revenue distribution by enumerating every outcome (independent deals)."""
    pmf: dict[float, float] = {}
    for outcome in itertools.product((0, 1), repeat=len(probabilities)):
        won = np.array(outcome, dtype=bool)
        weight = float(np.prod(np.where(won, probabilities, 1 - probabilities)))
        value = float(amounts[won].sum())
        pmf[value] = pmf.get(value, 0.0) + weight
    return pmf


@pytest.fixture(params=["sampled", "exact"])
def independent_path(request, monkeypatch) -> str:
    """Independent open deals two ways: each deal sampled, or (a rep with few deals) one draw per trial
    from the rep's exact distribution, as the kernel does on its own below EXACT_MAX_DEALS deals."""
    from tercap.simulate import kernel

    monkeypatch.setattr(kernel, "EXACT_MAX_DEALS", 0 if request.param == "sampled" else 64)
    return request.param


def uses_exact(book) -> bool:
    from tercap.simulate.kernel import _prepare

    return bool(_prepare(book).exact)


def test_independent_deals_match_the_exact_distribution(example_book, independent_path):
    rng = np.random.default_rng(5)
    probabilities = rng.uniform(0.05, 0.95, 8)
    amounts = rng.integers(1, 50, 8) * 1000.0
    book = open_deals_only(example_book, probabilities, amounts)
    assert uses_exact(book) == (independent_path == "exact")
    outcome = run(book, 100_000)
    revenue = outcome.rep_revenue[:, 0]
    pmf = exact_pmf(probabilities, amounts)
    values = np.array(sorted(pmf))
    exact_cdf = np.cumsum([pmf[v] for v in values])
    sampled_cdf = np.searchsorted(np.sort(revenue), values, side="right") / revenue.size
    assert np.abs(sampled_cdf - exact_cdf).max() < 0.01  # Kolmogorov–Smirnov distance
    mean, variance = (probabilities * amounts).sum(), (probabilities * (1 - probabilities) * amounts**2).sum()
    assert abs(revenue.mean() - mean) < 3 * np.sqrt(variance / revenue.size)


def test_market_factor_keeps_win_rates_and_widens_the_range(example_book):
    probabilities = np.full(400, 0.3)
    amounts = np.full(400, 1000.0)
    independent = run(open_deals_only(example_book, probabilities, amounts, 0.0), 20_000).rep_revenue[:, 0]
    correlated = run(open_deals_only(example_book, probabilities, amounts, 0.2), 20_000).rep_revenue[:, 0]
    expected = (probabilities * amounts).sum()
    for revenue in (independent, correlated):  # each deal keeps its win rate
        assert abs(revenue.mean() - expected) < 4 * revenue.std() / np.sqrt(revenue.size)
    # variance of a sum of equicorrelated Bernoulli wins: n p(1-p) + n(n-1) cov, cov from the copula
    from scipy.stats import multivariate_normal

    threshold = ndtri(0.3)
    joint = multivariate_normal(mean=[0, 0], cov=[[1, 0.2], [0.2, 1]]).cdf([threshold, threshold])
    n = probabilities.size
    predicted = 1000.0**2 * (n * 0.3 * 0.7 + n * (n - 1) * (joint - 0.09))
    assert correlated.var() == pytest.approx(predicted, rel=0.06)
    assert correlated.var() > 10 * independent.var()


def test_the_market_acts_on_every_stage_move_and_keeps_the_win_rate(example_book):
    """400 deals with three moves left (conversions 0.5, 0.6, 0.8): win rate 0.24 whatever ρ; given the
    market each passes with Π_j Φ((t_j − √ρZ)/√(1−ρ)), so pairs of deals covary by E[p(Z)²] − 0.24²,
    more than one copula draw on the whole deal with the same ρ would give."""
    from numpy.polynomial.hermite_e import hermegauss
    from scipy.stats import multivariate_normal

    from tercap.simulate.book import move_thresholds, win_given_market

    conversion, rho, n = np.array([0.5, 0.6, 0.8]), 0.1, 400
    p = float(conversion.prod())
    book = dataclasses.replace(open_deals_only(example_book, np.full(n, p), np.full(n, 1000.0), rho),
                               class_conversions=(conversion,), class_quarter=np.zeros(1, np.int64))
    revenue = run(book, 20_000).rep_revenue[:, 0]
    assert abs(revenue.mean() - n * p * 1000.0) < 4 * revenue.std() / np.sqrt(revenue.size)
    nodes, weights = hermegauss(80)
    weights /= weights.sum()
    thresholds = move_thresholds(conversion, rho)
    assert weights @ win_given_market(thresholds, nodes, rho) == pytest.approx(p, abs=1e-9)
    covariance = weights @ win_given_market(thresholds, nodes, rho) ** 2 - p**2
    predicted = 1000.0**2 * (n * p * (1 - p) + n * (n - 1) * covariance)
    assert revenue.var() == pytest.approx(predicted, rel=0.06)
    whole_deal = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([ndtri(p), ndtri(p)]) - p**2
    assert covariance > 1.5 * whole_deal


def test_each_quarter_has_its_own_market(example_book):
    """Deals closing in the same quarter move together; deals closing two quarters apart do not."""
    n = 200
    book = open_deals_only(example_book, np.full(2 * n, 0.3), np.full(2 * n, 1000.0), 0.2)
    close = np.zeros((2 * n, book.months + 1))
    close[:n, 0] = close[n:, 6] = 1.0  # January (first quarter) and July (third)
    book = dataclasses.replace(book, deal_rep=np.repeat([0, 1], n), deal_class=np.repeat([0, 1], n),
                               deal_close_month=close, class_conversions=(np.array([0.3]), np.array([0.3])),
                               class_quarter=np.array([0, 2]))
    revenue = run(book, 20_000).rep_revenue[:, :2]
    within = run(dataclasses.replace(book, class_quarter=np.array([0, 0])), 20_000).rep_revenue[:, :2]
    assert abs(np.corrcoef(revenue.T)[0, 1]) < 0.03
    assert np.corrcoef(within.T)[0, 1] > 0.5
    np.testing.assert_allclose(revenue.var(axis=0), within.var(axis=0), rtol=0.08)


def test_the_fitted_values_own_uncertainty_widens_the_range_not_the_mean(example_book):
    """400 independent deals at p = 0.3: a win rate known to ±0.03 adds a common swing of about
    0.03 × 400 × 1,000 = 12,000 to the sum, on top of the binomial spread; the mean stays."""
    base = open_deals_only(example_book, np.full(400, 0.3), np.full(400, 1000.0), 0.0)
    base = dataclasses.replace(base, class_conversions=(np.array([0.3]),), new_deal_conversions=np.array([0.3]))
    known = run(base, 20_000).rep_revenue[:, 0]
    unsure = run(dataclasses.replace(base, win_rate_std_error=0.03), 20_000).rep_revenue[:, 0]
    assert abs(unsure.mean() - known.mean()) < 4 * unsure.std() / np.sqrt(unsure.size)
    binomial = 400 * 0.3 * 0.7 * 1000.0**2
    assert known.var() == pytest.approx(binomial, rel=0.05)
    assert unsure.var() == pytest.approx(binomial + (0.03 * 400 * 1000.0) ** 2, rel=0.08)


def test_a_correlation_measured_on_few_quarters_is_drawn_per_trial(example_book):
    """ρ = 0.2 seen over 8 quarters: each trial draws ρ from 32 equally likely levels (the copula's
    quarterly variance × 7/χ²(7)); every level keeps the win rate, so the mean stays, and the variance is
    the average of the copula's variance over the levels: larger than at the measured ρ."""
    from scipy.stats import chi2, multivariate_normal

    from tercap.pipeline.copula import copula_variance, correlation_levels

    levels = correlation_levels(0.2, 0.3, 8)
    threshold = ndtri(0.3)
    assert len(levels) == 32 and np.all(np.diff(levels) > 0)
    median_variance = copula_variance(0.2, threshold) * 7 / chi2.median(7)
    assert copula_variance((levels[15] + levels[16]) / 2, threshold) == pytest.approx(median_variance, rel=0.05)
    assert correlation_levels(0.2, 0.3, 0).tolist() == [0.2] and correlation_levels(0.0, 0.3, 8).tolist() == [0.0]

    n = 400
    known = open_deals_only(example_book, np.full(n, 0.3), np.full(n, 1000.0), 0.2)
    measured = dataclasses.replace(known, correlation_levels=tuple(levels))
    revenue = run(measured, 40_000).rep_revenue[:, 0]
    assert abs(revenue.mean() - n * 300.0) < 4 * revenue.std() / np.sqrt(revenue.size)

    def variance(rho: float) -> float:
        joint = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([threshold, threshold])
        return 1000.0**2 * (n * 0.3 * 0.7 + n * (n - 1) * (joint - 0.09))

    assert revenue.var() == pytest.approx(np.mean([variance(rho) for rho in levels]), rel=0.06)
    assert revenue.var() > 1.2 * run(known, 40_000).rep_revenue[:, 0].var()


def test_amount_changes_have_the_stated_mean_and_spread(example_book):
    """One deal, p = 0.4, CRM amount 1,000: final amount 1,000 × lognormal ratio of mean 0.9, log-σ 0.5.
    Mean p·0.9·a; second moment p·(0.9·a)²·e^{σ²}."""
    p, amount, ratio, sigma = 0.4, 1_000.0, 0.9, 0.5
    book = dataclasses.replace(open_deals_only(example_book, np.array([p]), np.array([amount])),
                               amount_ratio=ratio, amount_sigma=sigma)
    revenue = run(book, 200_000).rep_revenue[:, 0]
    mean, second = p * ratio * amount, p * (ratio * amount) ** 2 * np.exp(sigma**2)
    error = np.sqrt((second - mean**2) / revenue.size)
    assert abs(revenue.mean() - mean) < 3 * error
    assert (revenue**2).mean() == pytest.approx(second, rel=0.03)
    assert (revenue > 0).mean() == pytest.approx(p, abs=0.005)  # the win rate is untouched


def test_new_deals_bring_their_expected_revenue(example_book):
    book = dataclasses.replace(example_book, deal_rep=np.zeros(0, dtype=np.int64),
                               deal_class=np.zeros(0, dtype=np.int64),
                               deal_amount=np.zeros(0), deal_close_month=np.zeros((0, example_book.months + 1)),
                               correlation=0.0, monthly_hazard=0.0)
    outcome = run(book, 4_000)
    mean_amount = book.cell_median_amount * np.exp(book.cell_sigma**2 / 2)
    created = book.productivity[book.cell_rep, :] * book.cell_opportunities
    expected_wins = np.einsum("cm,cmk->c", created, book.cell_close_month) * book.win_rate
    expected = float((expected_wins * mean_amount).sum())
    total = outcome.rep_revenue.sum(axis=1)
    assert abs(total.mean() - expected) < 4 * total.std() / np.sqrt(total.size)


def test_attrition_matches_the_annual_rate(example_book):
    book = dataclasses.replace(example_book, deal_rep=np.zeros(0, dtype=np.int64),
                               deal_class=np.zeros(0, dtype=np.int64),
                               deal_amount=np.zeros(0), deal_close_month=np.zeros((0, example_book.months + 1)))
    outcome = run(book, 2_000)
    expected = book.num_reps * (1 - (1 - book.monthly_hazard) ** book.months)
    assert outcome.departures.mean() == pytest.approx(expected, rel=0.05)
    no_attrition = run(dataclasses.replace(book, monthly_hazard=0.0), 2_000)
    assert no_attrition.rep_revenue.mean() > outcome.rep_revenue.mean()  # vacancies and ramps cost revenue


def test_same_seed_same_result_whatever_the_chunks_and_workers(example):
    first = simulate(example, trials=1_000, seed=3, chunk_trials=256)
    second = simulate(example, trials=1_000, seed=3, chunk_trials=4_096)
    parallel = simulate(example, trials=1_000, seed=3, chunk_trials=256, workers=2)
    np.testing.assert_array_equal(first.rep_revenue, second.rep_revenue)
    np.testing.assert_array_equal(first.rep_revenue, parallel.rep_revenue)
    np.testing.assert_array_equal(first.company_monthly, parallel.company_monthly)
    assert first.metrics == second.metrics == parallel.metrics  # read off the first block only
    other = simulate(example, trials=1_000, seed=4)
    assert not np.array_equal(first.rep_revenue, other.rep_revenue)


def test_summaries_are_consistent(example):
    result = tercap.stress_test(example, trials=2_000, seed=1)
    reps = result.reps()
    assert list(reps.columns) == ["rep_id", "quota", "mean", "p10", "p50", "p90", "p_attain", "expected_attainment"]
    assert (reps["p10"] <= reps["p50"]).all() and (reps["p50"] <= reps["p90"]).all()
    company = result.company()
    assert company["revenue_p10"] <= company["revenue_p50"] <= company["revenue_p90"]
    assert 0 <= company["p_hit_target"] <= 1
    assert company["quota_total"] == pytest.approx(example.settings.quota.company_target
                                                   * example.settings.quota.over_assignment)
    # rep revenue adds up to the company's
    np.testing.assert_allclose(result.rep_revenue.sum(axis=1), result.company_revenue, rtol=1e-5)  # float32 sums
    assert company["expected_reps_at_quota"] == pytest.approx(reps["p_attain"].sum())
    assert "<script>" not in result._repr_html_()


class _Assignment:
    def __init__(self, assignments: pd.DataFrame) -> None:
        self.assignments = assignments


def test_a_hire_ramps_up_on_the_book_it_is_given(example):
    hired = tercap.load(REPO / "scenarios" / "acme_fy27_hire5.yaml")
    accounts = hired.accounts
    veteran = "R0003"
    moved = accounts["current_owner"].mask(accounts["current_owner"].eq(veteran).fillna(False), "HIRE-01")
    plan = _Assignment(pd.DataFrame({"account_id": accounts["account_id"], "rep_id": moved}))
    base = tercap.stress_test(example, trials=2_000, seed=1).reps().set_index("rep_id")
    with_hire = tercap.stress_test(hired, plan, trials=2_000, seed=1).reps().set_index("rep_id")
    # the same book (open deals follow their accounts) brings less to a hire who starts later and ramps
    assert 0 < with_hire.at["HIRE-01", "mean"] < base.at[veteran, "mean"]
    assert with_hire.at[veteran, "mean"] == 0.0 and with_hire.at[veteran, "quota"] == 0.0


def test_cli_simulate_writes_sim_files(tmp_path, capsys):
    code = main(["simulate", str(REPO / "scenarios" / "acme_fy27.yaml"), "--trials", "1000",
                 "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "P(hit target)" in text
    reps = pd.read_csv(tmp_path / "sim" / "reps.csv")
    assert list(reps.columns)[:7] == ["rep_id", "quota", "mean", "p10", "p50", "p90", "p_attain"]
    company = json.loads((tmp_path / "sim" / "company.json").read_text())
    assert company["trials"] == 1000 and 0 <= company["p_hit_target"] <= 1


def test_cli_simulate_per_trial_writes_parquet(tmp_path, capsys):
    code = main(["simulate", str(REPO / "scenarios" / "acme_fy27.yaml"), "--trials", "600", "--per-trial",
                 "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().out
    trials = pd.read_parquet(tmp_path / "sim" / "trials.parquet")
    monthly = pd.read_parquet(tmp_path / "sim" / "monthly.parquet")
    reps = pd.read_csv(tmp_path / "sim" / "reps.csv")
    assert len(trials) == len(monthly) == 600 and list(trials["trial"]) == list(range(600))
    assert list(trials.columns[1:-1]) == list(reps["rep_id"])
    np.testing.assert_allclose(trials[reps["rep_id"]].mean().to_numpy(), reps["mean"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(monthly.drop(columns="trial").sum(axis=1), trials["company"], rtol=1e-9)


def test_cli_simulate_without_a_plan_folder_exits_2(tmp_path, capsys):
    code = main(["simulate", str(REPO / "scenarios" / "acme_fy27.yaml"), "--plan", str(tmp_path / "nothing")])
    assert code == 2
    assert "no plan there" in capsys.readouterr().err


def test_sampler_matches_the_dynamic_programme_on_fifty_deals(example_book, independent_path):
    from tercap.simulate.exact import kolmogorov_smirnov, revenue_distribution

    rng = np.random.default_rng(11)
    probabilities = rng.uniform(0.05, 0.9, 50)
    amounts = rng.integers(1, 2_000, 50) * 100.0  # on the $100 grid
    book = open_deals_only(example_book, probabilities, amounts)
    assert uses_exact(book) == (independent_path == "exact")
    outcome = run(book, 100_000, seed=2)
    exact = revenue_distribution(probabilities, amounts, grid=100.0)
    assert kolmogorov_smirnov(outcome.rep_revenue[:, 0], exact) < 0.01
    # the month a deal lands in: its expectation, whichever way the deal was drawn
    assert outcome.company_monthly.sum(axis=1) == pytest.approx(outcome.rep_revenue.sum(axis=1), rel=1e-5)


def test_exact_draws_only_where_deals_are_independent(example_book):
    """The kernel draws a few-deal rep from its exact distribution only without a market factor, a drawn
    win rate or amount changes; a rep with more deals than EXACT_MAX_DEALS is always sampled."""
    from tercap.simulate.kernel import EXACT_MAX_DEALS

    book = open_deals_only(example_book, np.full(10, 0.4), np.full(10, 1000.0))
    assert uses_exact(book)
    for shared in ({"correlation": 0.05}, {"correlation_levels": (0.0, 0.1)}, {"win_rate_std_error": 0.02},
                   {"amount_sigma": 0.1}):
        assert not uses_exact(dataclasses.replace(book, **shared))
    many = EXACT_MAX_DEALS + 1
    assert not uses_exact(open_deals_only(example_book, np.full(many, 0.4), np.full(many, 1000.0)))


def test_cli_calibrate_prints_the_fitted_values(capsys):
    code = main(["calibrate", str(REPO / "scenarios" / "acme_fy27.yaml")])
    text = capsys.readouterr().out
    assert code == 0, text
    for name in ("conversion qualify", "win_rate", "deal_median enterprise", "market_correlation"):
        assert name in text


def test_cli_calibrate_without_history_exits_2(tiny, capsys):
    tiny.edit("scenario.yaml", "  history: history.csv\n", "")
    assert main(["calibrate", str(tiny.path)]) == 2
    assert "no history" in capsys.readouterr().err


def test_dask_local_cluster_gives_the_same_result(example):
    pytest.importorskip("dask.distributed")
    alone = simulate(example, trials=600, seed=5, chunk_trials=256)
    one = simulate(example, trials=600, seed=5, chunk_trials=256, dask="local", workers=1)
    two = simulate(example, trials=600, seed=5, chunk_trials=256, dask="local", workers=2)
    np.testing.assert_array_equal(alone.rep_revenue, one.rep_revenue)
    np.testing.assert_array_equal(one.rep_revenue, two.rep_revenue)
    np.testing.assert_array_equal(one.company_monthly, two.company_monthly)


def test_classic_metrics_read_off_a_known_book(example):
    """Open deals at three stages with known win rates and amounts; no new deals: the weighted pipeline is
    Σ amount × win rate from the stage, the share won inside the period by stage is that win rate × the
    probability of closing inside, within the Monte Carlo error of 256 trials, and the average won deal is
    the won revenue ÷ the won deals."""
    from tercap.simulate.kernel import block_seeds, simulate_blocks
    from tercap.simulate.metrics import classic_metrics

    accounts = example.accounts
    book = build_book(example.replace(capacity={"annual_attrition": 0.0}),
                      pd.Series(accounts["current_owner"].to_numpy(dtype=object), index=accounts["account_id"]))
    book = dataclasses.replace(book, cell_rep=np.zeros(0, dtype=np.int64), cell_median_amount=np.zeros(0),
                               cell_sigma=np.zeros(0), cell_opportunities=np.zeros((0, book.months)),
                               cell_close_month=np.zeros((0, book.months, book.months)))
    outcome = simulate_blocks(book, block_seeds(5, 1), 256, 0)
    figures = classic_metrics(book, example.settings, outcome.open_revenue, outcome.new_won, outcome.stage_won,
                              outcome.company_monthly.sum(axis=1))
    conversion = np.array([s.conversion for s in example.settings.simulation.stages])
    win = np.cumprod(conversion[::-1])[::-1]
    stage = book.deal_class % len(conversion)
    amount = book.deal_amount * book.amount_ratio
    assert figures["weighted_pipeline_value"] == pytest.approx(float((amount * win[stage]).sum()))
    inside = 1 - book.deal_close_month[:, -1]
    for s, name in enumerate(example.settings.simulation.stage_names):
        members = stage == s
        expected = float(np.mean(win[s] * inside[members]))
        error = np.sqrt(expected * (1 - expected) / (256 * members.sum())) + 0.02  # + the market's common swing
        assert abs(figures["won_in_period_share_by_stage"][name] - expected) < 4 * error, name
    assert figures["new_deals_won_mean"] == 0
    revenue = outcome.company_monthly.sum(axis=1)
    assert figures["average_won_deal_size"] == pytest.approx(revenue.sum() / outcome.stage_won.sum())
    assert figures["ramp_months_by_segment"]["enterprise"] >= figures["ramp_months_by_segment"]["smb"]


def test_worked_share_by_hand():
    """Three reps of one segment and one of another, one month. A (needs 130 h, has 100) works 100/130
    of its book: overload is not covered. B is absent (planned 0 h, needs 50): the segment's spare hours
    cover it; C has 40 spare. D, in another segment, has spare hours that do not cross over."""
    from tercap.simulate.book import Coverage

    coverage = Coverage(needed=np.array([130.0, 50.0, 60.0, 10.0]),
                        planned=np.array([[100.0], [0.0], [100.0], [100.0]]),
                        full=np.array([100.0, 100.0, 100.0, 100.0]), segment=np.array([0, 0, 0, 1]))
    share = coverage.worked_share(coverage.planned[None, :, :])[0, :, 0]
    np.testing.assert_allclose(share, [100 / 130, 40 / 50, 1.0, 1.0])
    # a departure (0 h) leaves C's book to A and B's spare hours: none spare here, so it goes unworked,
    # while D's spare hours stay in D's segment
    gone = coverage.worked_share(np.array([[[100.0], [0.0], [0.0], [100.0]]]))[0, :, 0]
    np.testing.assert_allclose(gone, [100 / 130, 0.0, 0.0, 1.0])
    # more spare hours than open ones: every absent book is covered in full
    roomy = Coverage(needed=np.array([20.0, 50.0]), planned=np.array([[100.0], [0.0]]), full=np.array([100.0, 100.0]),
                     segment=np.array([0, 0]))
    np.testing.assert_allclose(roomy.worked_share(roomy.planned[None])[0, :, 0], [1.0, 1.0])


def test_a_book_above_capacity_brings_less_than_the_same_book_covered(example):
    """Today's imbalanced books: with workload coverage the overloaded reps work part of their books, so
    new business is lower than with every book worked in full; reps within capacity are unaffected."""
    covered = simulate(example, trials=1_000, seed=2)
    full = simulate(example.replace(simulation={"workload_coverage": False}), trials=1_000, seed=2)
    assert covered.company_revenue.mean() < full.company_revenue.mean()
    book = build_book(example, pd.Series(example.accounts["current_owner"].to_numpy(dtype=object),
                                         index=example.accounts["account_id"]))
    hours = book.coverage.planned.sum(axis=1)
    needed = book.coverage.needed * book.months
    light = (needed > 0) & (needed < 0.5 * hours)
    all_year = (book.coverage.planned > 0).all(axis=1)  # a leaver's book is covered by the team after
    heavy = (needed > 1.5 * hours) & all_year
    assert light.any() and heavy.any()
    assert (book.productivity[light] >= book.coverage.planned[light] / book.coverage.full[light, None] - 1e-12).all()
    assert (book.productivity[heavy] <= 1 / 1.5).all()


def test_two_plans_meet_the_same_market_and_the_same_open_deals(example):
    """Common random numbers: with no new business, company revenue comes from the open deals alone, and
    two different plans give the same revenue in every trial (each deal's fate does not depend on its rep)."""
    quiet = example.replace(simulation={"pipeline_yield": 0.0})
    accounts = quiet.accounts
    today = _Assignment(pd.DataFrame({"account_id": accounts["account_id"], "rep_id": accounts["current_owner"]}))
    reps = quiet.reps["rep_id"].to_numpy()
    shuffled = accounts["current_owner"].map(dict(zip(reps, np.roll(reps, 7), strict=True)))
    other = _Assignment(pd.DataFrame({"account_id": accounts["account_id"], "rep_id": shuffled}))
    first = simulate(quiet, today, trials=512, seed=5, quotas=pd.Series(dtype=float))
    second = simulate(quiet, other, trials=512, seed=5, quotas=pd.Series(dtype=float))
    np.testing.assert_allclose(first.company_revenue, second.company_revenue, rtol=1e-5)
    assert not np.allclose(first.rep_revenue, second.rep_revenue)
    third = simulate(quiet, today, trials=512, seed=6, quotas=pd.Series(dtype=float))
    assert not np.allclose(first.company_revenue, third.company_revenue)
