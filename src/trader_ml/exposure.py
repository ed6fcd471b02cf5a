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
