"""Regime probabilities -> market exposure -> daily returns: the one rule every regime row is held by.

``exposure = P(calm_uptrend) + P(risk_on_trend) + 0.5 P(choppy)``, set from what was known at
the previous close and held through the day; each change of exposure costs ``cost_bp`` basis
points per unit changed (``COST_BP`` unless a backtest says otherwise). It is in the foundation
because the backtest and the live record judge every row by it, and both must hold a row alike.
"""

from __future__ import annotations

import numpy as np

from trader_ml.schema import REGIMES

# Weight of each regime in the exposure, in REGIMES order.
EXPOSURE_WEIGHTS = np.array([1.0, 1.0, 0.0, 0.5, 0.0])
COST_BP = 10.0  # basis points per unit of exposure changed: the backtest's default and the live record's


def exposure(regime_probs: np.ndarray) -> np.ndarray:
    """Exposure in [0, 1] of each day from its regime probabilities (days x 5)."""
    probs = np.asarray(regime_probs, dtype=float)
    if probs.shape[-1] != len(REGIMES):
        raise ValueError(f"expected {len(REGIMES)} regime probabilities per day, got {probs.shape[-1]}")
    return probs @ EXPOSURE_WEIGHTS


def strategy_returns(exposures: np.ndarray, market_returns: np.ndarray, cost_bp: float) -> np.ndarray:
    """Daily return of holding ``exposures[i]`` of the market on day i (set at the close
    before), less ``cost_bp`` per unit of exposure changed at that close."""
    held = np.asarray(exposures, dtype=float)
    turnover = np.abs(np.diff(held, prepend=0.0))
    return held * np.asarray(market_returns, dtype=float) - turnover * cost_bp / 1e4


# The regime exposure as a risk budget: variance targeting's exposure is the prior, and the
# regime model corrects it. Fixed before any test year was looked at (docs/backtest.md):
PRIOR_HALF_LIFE = 21  # trading days, as the variance-targeting row's
PRIOR_VOL_DAYS = 252  # the window the prior's volatility is read over: older days weigh under 0.03%
PRIOR_STRENGTH = 1.0  # how far the model's view moves the prior: x (1 + strength (view - center))
TRADING_DAYS = 252


def window_vols(spy_return_1d: np.ndarray) -> np.ndarray:
    """Each day's annualised volatility as of its close: the exponentially weighted mean (half-life
    ``PRIOR_HALF_LIFE``) of the squared daily log returns of its last ``PRIOR_VOL_DAYS`` days
    (fewer at the start; a missing day counts for nothing). The same numbers from a whole history
    and from a serving window of its last ``PRIOR_VOL_DAYS`` days."""
    logs = np.log1p(np.asarray(spy_return_1d, dtype=float))
    known = np.isfinite(logs)
    weights = 0.5 ** (np.arange(PRIOR_VOL_DAYS) / PRIOR_HALF_LIFE)  # today first
    n = len(logs)
    squared = np.where(known, logs, 0.0) ** 2
    numerator = np.convolve(squared, weights)[:n]
    denominator = np.convolve(known.astype(float), weights)[:n]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, np.sqrt(TRADING_DAYS * numerator / denominator), np.nan)


def prior_exposure(vols: np.ndarray, vol_target: float) -> np.ndarray:
    """Variance targeting: ``min(1, (target / vol)^2)``; fully invested where the volatility is unknown."""
    vols = np.asarray(vols, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        held = np.minimum(1.0, (vol_target / vols) ** 2)
    return np.where(np.isfinite(held), held, 1.0)


def exposure_prior(spy_return_1d: np.ndarray, labels: np.ndarray) -> dict:
    """What a refit fits for the risk budget on its own training days: the volatility target (the
    median of the days' volatility) and the center (the exposure the training labels' regimes
    would give on average: what a model that knows nothing says every day)."""
    vols = window_vols(spy_return_1d)
    known = np.asarray(labels) >= 0
    return {
        "vol_target": float(np.nanmedian(vols)),
        "center": float(EXPOSURE_WEIGHTS[np.asarray(labels)[known]].mean()),
        "strength": PRIOR_STRENGTH,
    }


def risk_budget(vols: np.ndarray, regime_probs: np.ndarray, prior: dict) -> np.ndarray:
    """Exposure of each day: variance targeting's, moved by how far the model's view (today's rule
    on its probabilities) lies from the center, held in [0, 1]. A model that always says the
    training days' mix earns variance targeting's exposure exactly."""
    view = exposure(regime_probs)
    scale = 1.0 + prior["strength"] * (view - prior["center"])
    return np.clip(prior_exposure(vols, prior["vol_target"]) * scale, 0.0, 1.0)


def served_returns(
    spy_return_1d: np.ndarray, regime_probs: np.ndarray, rows: np.ndarray, prior: dict, cost_bp: float = COST_BP
) -> tuple[np.ndarray, np.ndarray]:
    """(risk budget, variance targeting alone at the same target): the daily returns over
    consecutive ``rows`` of what serving holds when the model answers and when it does not, each
    exposure set at a row's close from its probabilities and held over the next row."""
    spy = np.asarray(spy_return_1d, dtype=float)
    vols = window_vols(spy)[rows[:-1]]
    market = np.nan_to_num(spy[rows[1:]])  # a day without a SPY return earns nothing
    budget = risk_budget(vols, np.asarray(regime_probs)[:-1], prior)
    alone = prior_exposure(vols, prior["vol_target"])
    return strategy_returns(budget, market, cost_bp), strategy_returns(alone, market, cost_bp)
