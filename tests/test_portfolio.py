"""portfolio: the day's target weights and the book held through ten days, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trader_ml.portfolio import LOW_HEALTH, NO_SCORE, NO_VOLATILITY, PortfolioPolicy, hold, target_weights


def test_the_lowest_scored_quarter_is_left_out_and_the_rest_weighted_by_inverse_volatility():
    scores = np.array([0.9, 0.1, 0.5, np.nan, 0.7, 0.6])
    vols = np.array([0.2, 0.1, 0.4, 0.3, 0.0, 0.2])
    weights, why = target_weights(scores, vols, 0.8, PortfolioPolicy(leave_out_share=0.25))
    # valid: 0, 1, 2, 5 (3 has no score, 4 no volatility); a quarter of four: the 0.1 goes
    assert why == [None, LOW_HEALTH, None, NO_SCORE, NO_VOLATILITY, None]
    inverse = np.array([1 / 0.2, 0, 1 / 0.4, 0, 0, 1 / 0.2])
    assert weights == pytest.approx(0.8 * inverse / inverse.sum())
    assert weights.sum() == pytest.approx(0.8)


def test_ten_days_held_by_hand():
    """Two assets, a target of 50% and 30% (exposure 0.8), a trade every 5 days, 10 bp a unit."""
    policy = PortfolioPolicy(rebalance_days=5, drift_band=1.0, cost_bp=10.0)
    targets = np.tile([0.5, 0.3], (10, 1))
    returns = np.array([[0.01, -0.02], [0.02, 0.0], [-0.01, 0.01], [0.0, 0.03], [0.01, 0.01]] + [[0.005, -0.005]] * 5)
    book = hold(targets, returns, policy)
    # day 0: from cash to the target, 0.8 of weight traded
    assert book.turnover[0] == pytest.approx(0.8)
    assert book.returns[0] == pytest.approx((1 - 0.8 * 0.001) * (1 + 0.5 * 0.01 + 0.3 * -0.02) - 1)  # -0.0017992
    # day 1: the weights moved with day 0's prices (the book earned -0.001 before costs)
    w1 = np.array([0.5 * 1.01, 0.3 * 0.98]) / 0.999
    assert book.weights[1] == pytest.approx(w1) and book.turnover[1] == 0
    assert book.returns[1] == pytest.approx(w1[0] * 0.02)
    assert book.rebalanced.tolist() == [True, False, False, False, False, True, False, False, False, False]
    # an independent count in money: 1 of cash, positions that move with their prices, and each
    # trade's 10 bp of the money traded paid out of the book before it takes its new positions
    cash, value = 1.0, [0.0, 0.0]
    wealth = []
    for t in range(10):
        total = cash + sum(value)
        if t % 5 == 0:
            traded = sum(abs(w * total - v) for w, v in zip((0.5, 0.3), value, strict=True))
            after = total - traded * 0.001
            value = [0.5 * after, 0.3 * after]
            cash = after - sum(value)
        value = [v * (1 + r) for v, r in zip(value, returns[t], strict=True)]
        wealth.append((cash + sum(value)) / total)
    assert book.returns == pytest.approx(np.array(wealth) - 1.0, abs=1e-12)


def test_the_book_trades_early_when_it_drifts_past_the_band():
    policy = PortfolioPolicy(rebalance_days=21, drift_band=0.05)
    targets = np.tile([0.5, 0.5], (4, 1))
    returns = np.array([[0.0, 0.0], [0.3, -0.2], [0.0, 0.0], [0.0, 0.0]])  # 0.25 of the book moves on day 1
    book = hold(targets, returns, policy)
    assert book.rebalanced.tolist() == [True, False, True, False]
    assert np.array_equal(book.weights[1], targets[1])  # day 1 held the target; it drifted after


def test_appending_days_never_changes_an_earlier_days_weights():
    rng = np.random.default_rng(0)
    scores, vols = rng.uniform(size=(60, 8)), rng.uniform(0.1, 0.5, size=(60, 8))
    exposure = rng.uniform(0.3, 1.0, 60)
    targets = np.stack([target_weights(scores[t], vols[t], exposure[t])[0] for t in range(60)])
    returns = rng.normal(0, 0.01, (60, 8))
    whole, first = hold(targets, returns), hold(targets[:40], returns[:40])
    assert np.array_equal(whole.weights[:40], first.weights) and np.array_equal(whole.returns[:40], first.returns)


def test_an_asset_that_does_not_trade_earns_nothing_that_day():
    book = hold(np.array([[1.0, 0.0]]), np.array([[np.nan, 0.05]]), PortfolioPolicy(cost_bp=0.0))
    assert book.returns[0] == 0.0
