"""The figures that judge a row's daily strategy returns: Sharpe, drawdown, trades, by year.

Every regime row is held by the one exposure rule of ``trader_ml.exposure``, so rows differ
only in what they believe. Every row starts in cash the day before its first test day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.schema import TRADING_DAYS_PER_YEAR
from trader_ml.stats import max_drawdown, sharpe

CHANGE_THRESHOLD = 0.25  # an exposure change bigger than this counts as a trade in the table


def performance(returns: np.ndarray, exposures: np.ndarray) -> dict:
    """Annual return (compounded), volatility, Sharpe (mean / std x sqrt(252), no risk-free
    rate), max drawdown, exposure changes above 0.25 per year, and mean exposure."""
    r = np.asarray(returns, dtype=float)
    held = np.asarray(exposures, dtype=float)
    n = len(r)
    years = n / TRADING_DAYS_PER_YEAR
    std = float(r.std(ddof=1)) if n > 1 else 0.0
    changes = np.abs(np.diff(held, prepend=0.0))[1:] > CHANGE_THRESHOLD
    return {
        "annual_return": float(np.prod(1.0 + r) ** (1.0 / years) - 1.0) if n else float("nan"),
        "volatility": std * np.sqrt(TRADING_DAYS_PER_YEAR),
        "sharpe": sharpe(r) if n else float("nan"),
        "max_drawdown": max_drawdown(r),
        "exposure_changes_per_year": float(changes.sum() / years) if n else float("nan"),
        "mean_exposure": float(held.mean()) if n else float("nan"),
        "days": n,
    }


def performance_by_year(dates: pd.DatetimeIndex, returns: np.ndarray, exposures: np.ndarray) -> dict[int, dict]:
    """``performance`` of each calendar year's days."""
    years = pd.DatetimeIndex(dates).year
    return {
        int(y): performance(np.asarray(returns)[years == y], np.asarray(exposures)[years == y])
        for y in sorted(set(years))
    }
