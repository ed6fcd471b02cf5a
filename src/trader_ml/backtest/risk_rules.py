"""The rows a user would pick instead of a regime model: variance targeting, the 200-day trend,
and their product (each judged against the model by ``stats.against_model``).

The rules read only SPY's daily returns, causally: the exposure of day t uses returns up to t
and, like every row, is held through day t + 1. Their settings were fixed before any run
(docs/backtest.md):

- **variance targeting**: ``exposure = min(1, (target / vol)^2)``, where ``vol`` is the square
  root of the exponentially weighted mean of squared daily log returns (half-life 21 days),
  annualised, and ``target`` is the median of that volatility over all days before;
- **200-day trend**: fully in when the close is above its mean over the last 200 closes, else out;
- **both**: the product of the two exposures.

A day without enough history for a rule (the first day for variance targeting, the first 199
for the trend) is fully invested, as buy-and-hold is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.schema import TRADING_DAYS_PER_YEAR

VOL_HALF_LIFE = 21  # trading days
TREND_DAYS = 200


def variance_target_exposure(spy_return_1d: np.ndarray) -> np.ndarray:
    logs = pd.Series(np.log1p(np.asarray(spy_return_1d, dtype=float)))
    vol = np.sqrt(logs.pow(2).ewm(halflife=VOL_HALF_LIFE).mean() * TRADING_DAYS_PER_YEAR)
    target = vol.expanding().median().shift(1)  # over all days before, never the day itself
    with np.errstate(divide="ignore", invalid="ignore"):
        held = np.minimum(1.0, (target / vol) ** 2)
    return held.fillna(1.0).to_numpy()


def trend_exposure(spy_return_1d: np.ndarray, days: int = TREND_DAYS) -> np.ndarray:
    close = pd.Series(np.cumprod(1.0 + np.asarray(spy_return_1d, dtype=float)))
    mean = close.rolling(days, min_periods=days).mean()
    return np.where(mean.isna(), 1.0, (close > mean).astype(float))


def rule_exposures(spy_return_1d: np.ndarray) -> dict[str, np.ndarray]:
    """Exposure of every day (as of its close) for each rule row."""
    vt, trend = variance_target_exposure(spy_return_1d), trend_exposure(spy_return_1d)
    return {"variance_target": vt, "trend_200d": trend, "variance_target_x_trend": vt * trend}
