"""Regime probabilities -> market exposure -> daily returns: the one rule every regime row is held by.

``exposure = P(calm_uptrend) + P(risk_on_trend) + 0.5 P(choppy)``, set from what was known at
the previous close and held through the day; each change of exposure costs ``cost_bp`` basis
points per unit changed. It is in the foundation because training chooses its labels by what
they would earn under it (``training/label_choice.py``), and the backtest and the live record
judge every row by it.
"""

from __future__ import annotations

import numpy as np

from trader_ml.schema import REGIMES

# Weight of each regime in the exposure, in REGIMES order.
EXPOSURE_WEIGHTS = np.array([1.0, 1.0, 0.0, 0.5, 0.0])


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


def delayed(regimes: np.ndarray, lag: int) -> np.ndarray:
    """The regime of ``lag`` days before each day (-1 where there is none)."""
    return np.r_[np.full(lag, -1), regimes[: len(regimes) - lag]]


def delayed_exposure_returns(
    regimes: np.ndarray, market_returns: np.ndarray, days: np.ndarray, lag: int, cost_bp: float = 10.0
) -> np.ndarray:
    """Returns on ``days`` of holding the exposure of the regime ``lag`` days before each one
    (fully invested where that regime is unknown), ``cost_bp`` per unit changed."""
    known = delayed(np.asarray(regimes), lag)
    held = np.where(known >= 0, EXPOSURE_WEIGHTS[np.maximum(known, 0)], 1.0)
    return strategy_returns(held[days], np.asarray(market_returns, dtype=float)[days], cost_bp)
