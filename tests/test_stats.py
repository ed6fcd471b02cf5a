"""stats: the one home of resamples, intervals, Sharpe, drawdown, proper scores and Newey-West,
checked by hand, row by row against their vectorised form, and as the only definitions."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import trader_ml
from trader_ml import stats


def test_sharpe_by_hand_and_row_by_row():
    rng = np.random.default_rng(0)
    returns = rng.normal(0.0005, 0.01, (4, 300))
    one = returns[0]
    assert stats.sharpe(one) == pytest.approx(one.mean() / one.std(ddof=1) * np.sqrt(252))
    assert stats.sharpe(returns) == pytest.approx([stats.sharpe(r) for r in returns])
    assert np.isnan(stats.sharpe(np.zeros(50)))  # no variation: no ratio, not an infinity
    assert np.isnan(stats.sharpe(np.array([0.01])))


def test_max_drawdown_counts_a_fall_from_the_start_and_works_on_rows():
    assert stats.max_drawdown(np.array([-0.1, 0.05])) == pytest.approx(-0.1)
    assert stats.max_drawdown(np.array([0.1, 0.1])) == 0.0
    rows = np.array([[0.1, -0.5, 0.2], [-0.2, 0.1, -0.1]])
    equity = np.cumprod(1 + rows[1])  # 0.8, 0.88, 0.792 from a start of 1
    assert stats.max_drawdown(rows) == pytest.approx([1.1 * 0.5 / 1.1 - 1, equity[-1] - 1])
    assert stats.max_drawdown(np.array([])) == 0.0


def test_proper_scores_by_hand():
    p, y = np.array([0.9, 0.2, 0.0]), np.array([1.0, 1.0, 0.0])
    assert stats.log_loss_rows(p, y) == pytest.approx([-np.log(0.9), -np.log(0.2), -np.log(1 - stats.EPS)])
    assert stats.brier_rows(p, y) == pytest.approx([0.01, 0.64, 0.0])


def test_over_resamples_is_the_statistic_of_each_resample():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=200), rng.normal(size=200)
    index = stats.resamples(a - b, seed=1, samples=50)
    draws = stats.over_resamples(lambda x, y: stats.sharpe(x) - stats.sharpe(y), index, a, b)
    assert draws == pytest.approx([stats.sharpe(a[row]) - stats.sharpe(b[row]) for row in index])
    low, high = stats.interval(draws)
    assert low == pytest.approx(np.quantile(draws, 0.05)) and high == pytest.approx(np.quantile(draws, 0.95))
    assert stats.interval(np.array([np.nan, 1.0, 2.0, np.nan])) == pytest.approx([1.05, 1.95])  # NaN draws left out


def test_block_length_follows_the_dependence_of_the_days():
    rng = np.random.default_rng(2)
    noise = rng.normal(size=1000)
    persistent = np.zeros(1000)
    for t in range(1, 1000):
        persistent[t] = 0.95 * persistent[t - 1] + noise[t]
    assert stats.mean_block_length(persistent) > 3 * stats.mean_block_length(noise)
    assert stats.mean_block_length(np.zeros(300)) == stats.FALLBACK_BLOCK_DAYS  # flat: the fallback


def test_newey_west_without_lags_is_the_plain_standard_error():
    x = np.random.default_rng(0).normal(size=500)
    assert stats.newey_west_se(x, 0) == pytest.approx(x.std(ddof=0) / np.sqrt(len(x)))


def test_newey_west_is_the_bartlett_long_run_variance_by_hand():
    # x = 1, 2, 4: deviations -4/3, -1/3, 5/3; gamma_0 = 42/27, gamma_1 = -1/27, weight 1/2 at lag 1.
    assert stats.newey_west_se(np.array([1.0, 2.0, np.nan, 4.0]), 1) == pytest.approx(np.sqrt((42 / 27 - 1 / 27) / 3))


def test_newey_west_widens_the_error_of_overlapping_outcomes():
    noise = np.random.default_rng(1).normal(size=2000)
    overlapping = np.convolve(noise, np.ones(21) / 21, mode="valid")  # 21-day sums overlap
    assert stats.newey_west_se(overlapping, 21) > 3 * stats.newey_west_se(overlapping, 0)


# Names and expressions that would be a second definition of one of the statistics above.
OWN = {
    "sharpe",
    "max_drawdown",
    "drawdowns",
    "log_loss_rows",
    "brier_rows",
    "resamples",
    "mean_block_length",
    "newey_west_se",
}


def _second_definitions(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in OWN | {"interval"}:
            found.append(f"def {node.name}")
        elif isinstance(node, ast.Attribute) and node.attr in ("StationaryBootstrap", "optimal_block_length"):
            found.append(node.attr)
        elif isinstance(node, ast.Attribute) and node.attr == "accumulate":
            found.append("a running peak (drawdown)")
    return found


def test_the_statistics_are_defined_in_stats_alone():
    package = Path(trader_ml.__file__).parent
    elsewhere = {
        str(path.relative_to(package)): found
        for path in sorted(package.rglob("*.py"))
        if path.name != "stats.py" and (found := _second_definitions(path.read_text()))
    }
    assert elsewhere == {}
    assert _second_definitions("def _sharpe(r):\n    return r.mean()\npeak = np.maximum.accumulate(x)\n") == [
        "def _sharpe",
        "a running peak (drawdown)",
    ]  # it catches both kinds
