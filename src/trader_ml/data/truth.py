"""The simulator's hidden regimes and health states, read from a store beside the data they explain.

Only synthetic stores have them (``truth/regime``, ``truth/health``); every function returns
None where the store has none, or not for every row asked about.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.data.partitions import read_table
from trader_ml.schema import REGIMES
from trader_ml.store import Store


def regime_truth(store: Store | None, dates: pd.Series) -> np.ndarray | None:
    """The simulator's regime index per context day, when the store has one for every day."""
    if store is None:
        return None
    truth = read_table(store, "truth_regime", start=dates.iloc[0].date(), end=dates.iloc[-1].date())
    if truth.empty:
        return None
    by_day = pd.Series(
        truth["regime"].map({r: i for i, r in enumerate(REGIMES)}).to_numpy(), index=pd.DatetimeIndex(truth["date"])
    )
    aligned = by_day.reindex(pd.DatetimeIndex(dates))
    return None if aligned.isna().any() else aligned.to_numpy(dtype=np.int64)


HEALTH_STATE_RANK = {"distressed": 0, "neutral": 1, "healthy": 2}  # higher is healthier


def health_truth(store: Store | None, features: pd.DataFrame) -> np.ndarray | None:
    """The simulator's hidden health state per feature row (2 healthy .. 0 distressed), if known."""
    if store is None:
        return None
    dates = features["date"]
    truth = read_table(store, "truth_health", start=dates.iloc[0].date(), end=dates.iloc[-1].date())
    if truth.empty:
        return None
    truth = truth.assign(rank=truth["health_state"].map(HEALTH_STATE_RANK), date=pd.to_datetime(truth["date"]))
    aligned = features[["date", "symbol"]].merge(truth[["date", "symbol", "rank"]], on=["date", "symbol"], how="left")
    return None if aligned["rank"].isna().any() else aligned["rank"].to_numpy(dtype=float)
