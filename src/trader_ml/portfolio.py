"""The portfolio a bot holds from both models: the health model picks which assets carry risk,
the exposure says how much; weights set at one close, held through the next day.

numpy only, so that the backtest and serving hold the same portfolio from the same code. The
policy's settings were written down before any test year was looked at (docs/backtest.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trader_ml.exposure import COST_BP


@dataclass(frozen=True)
class PortfolioPolicy:
    """Leave out the assets the health model scores lowest, weight the rest by inverse
    volatility, scale the total by the exposure; trade to that target every ``rebalance_days``
    trading days, or sooner when the held weights have drifted past ``drift_band``."""

    leave_out_share: float = 0.25  # the lowest-scored quarter of the day's universe gets no weight
    rebalance_days: int = 21  # about a month of trading
    drift_band: float = 0.10  # half the sum of |held - target|: a tenth of the book has moved
    cost_bp: float = COST_BP  # per unit of weight traded

    def __post_init__(self) -> None:
        if not 0 <= self.leave_out_share < 1:
            raise ValueError("leave_out_share must be in [0, 1)")
        if self.rebalance_days < 1 or self.drift_band <= 0 or self.cost_bp < 0:
            raise ValueError("rebalance_days >= 1, drift_band > 0 and cost_bp >= 0")


POLICY = PortfolioPolicy()
VOL_COLUMN = "vol_63d"  # the volatility the policy and every inverse-volatility book weigh by
NO_SCORE, NO_VOLATILITY, LOW_HEALTH = "no health score", "no volatility", "health score in the lowest share"


def inverse_vol(vols: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Weights summing to 1 over ``allowed`` assets, each in proportion to 1 / its volatility."""
    inverse = np.where(allowed, 1.0 / np.where(allowed, vols, 1.0), 0.0)
    total = inverse.sum(axis=-1, keepdims=True)
    return np.divide(inverse, total, out=np.zeros_like(inverse), where=total > 0)


def equal_weights(vols: np.ndarray) -> np.ndarray:
    """Equal weights over the assets of each row (day) that have a positive volatility."""
    listed = np.isfinite(vols) & (vols > 0)
    return listed / np.maximum(listed.sum(axis=-1, keepdims=True), 1)


def inverse_vol_weights(vols: np.ndarray) -> np.ndarray:
    """Inverse-volatility weights over the assets of each row (day) that have a positive volatility."""
    listed = np.isfinite(vols) & (vols > 0)
    return inverse_vol(np.where(listed, vols, 1.0), listed)


def health_selection(scores: np.ndarray, vols: np.ndarray, share: float) -> tuple[np.ndarray, list[str | None]]:
    """(kept, why each asset is left out or None) for one day: assets without a score or a
    positive volatility are left out, then the lowest-scored ``share`` of the rest (ties go to
    the earlier asset, so the choice never depends on anything but the day's numbers)."""
    scores, vols = np.asarray(scores, dtype=float), np.asarray(vols, dtype=float)
    why: list[str | None] = [None] * len(scores)
    for i in np.flatnonzero(~np.isfinite(scores)):
        why[i] = NO_SCORE
    for i in np.flatnonzero(np.isfinite(scores) & ~(np.isfinite(vols) & (vols > 0))):
        why[i] = NO_VOLATILITY
    valid = np.array([w is None for w in why], dtype=bool)
    dropped = int(np.floor(share * valid.sum()))
    order = np.argsort(np.where(valid, scores, np.inf), kind="stable")
    for i in order[:dropped]:
        why[i] = LOW_HEALTH
    return np.array([w is None for w in why], dtype=bool), why


def target_weights(
    scores: np.ndarray, vols: np.ndarray, exposure: float, policy: PortfolioPolicy = POLICY
) -> tuple[np.ndarray, list[str | None]]:
    """One day's target: (weight of each asset, summing to ``exposure``; why each left-out asset
    is left out)."""
    kept, why = health_selection(scores, vols, policy.leave_out_share)
    return inverse_vol(np.asarray(vols, dtype=float), kept) * float(exposure), why


@dataclass(frozen=True)
class Holding:
    weights: np.ndarray  # (days, assets): held through each day, set at the close before
    returns: np.ndarray  # (days,): the book's return each day, costs taken
    turnover: np.ndarray  # (days,): sum of |weight traded| at the close before each day
    rebalanced: np.ndarray  # (days,): whether the book traded to its target before that day


def hold(targets: np.ndarray, returns: np.ndarray, policy: PortfolioPolicy = POLICY) -> Holding:
    """Hold ``targets[t]`` (the target known at the close before day t; rows sum to the exposure,
    the rest in cash earning nothing) through ``returns[t]`` (each asset's return on day t, NaN
    when it does not trade: it earns nothing that day). The book starts in cash and trades to the
    target on its first day, then every ``rebalance_days`` days or when it has drifted past the
    band; between trades its weights move with prices. Each trade costs ``cost_bp`` per unit of
    weight traded, paid out of the whole book."""
    targets = np.asarray(targets, dtype=float)
    moves = np.nan_to_num(np.asarray(returns, dtype=float))
    days, assets = targets.shape
    weights, book = np.zeros((days, assets)), np.zeros(days)
    turnover, rebalanced = np.zeros(days), np.zeros(days, dtype=bool)
    current, since = np.zeros(assets), policy.rebalance_days
    for t in range(days):
        if since >= policy.rebalance_days or 0.5 * np.abs(current - targets[t]).sum() > policy.drift_band:
            turnover[t] = np.abs(targets[t] - current).sum()
            current, since, rebalanced[t] = targets[t].copy(), 0, True
        weights[t] = current
        gross = float(current @ moves[t])
        # The trade's cost shrinks the whole book at the close it trades, so the weights stay the target's.
        book[t] = (1.0 - turnover[t] * policy.cost_bp / 1e4) * (1.0 + gross) - 1.0
        current = current * (1.0 + moves[t]) / (1.0 + gross)  # each weight moves with its price
        since += 1
    return Holding(weights, book, turnover, rebalanced)
