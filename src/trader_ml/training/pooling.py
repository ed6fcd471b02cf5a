"""Borrowed strength: the bundled sample's feature rows, pooled into a small universe's training.

A universe of five or ten ETFs holds too few names a day to learn a health correction from.
Its features are per asset and its target is a rank within each day's own universe, so rows
of another universe can join the training rows unchanged: the bundled 20 US large caps
(1990-2022) form their own daily universes and keep their own targets. Only training rows are
pooled; validation, test and every reported number stay the user's own universe.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd

from trader_ml.training.labels import health_targets

POOL_BELOW_SYMBOLS = 10  # a universe with fewer symbols than this trains with the sample pooled in
POOLED_SOURCE = "the bundled sample (20 US large caps, 1990-2022)"
POOL_DAYS = 1260  # the latest five years before the cutoff: 25,000 rows, the market nearest the user's


@lru_cache(maxsize=2)
def bundled_rows(horizon: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The bundled sample's feature rows and their targets (computed once per process: every
    refit of a backtest pools from the same rows)."""
    from trader_ml.data.features import feature_rows
    from trader_ml.data.sources.sample import SampleSource

    features = feature_rows(SampleSource().fetch(dt.date(1989, 1, 1), dt.date(2023, 1, 1)))[0]
    return features, health_targets(features, horizon)[0]


def pooled_rows(before: pd.Timestamp, horizon: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(feature rows, target) of the bundled sample's last ``POOL_DAYS`` days whose outcome is
    known before ``before``: a pooled row never shares a market day with the user's validation
    or test outcomes."""
    features, target = bundled_rows(horizon)
    dates = pd.DatetimeIndex(features["date"])
    # The outcome of day d ends ``horizon`` trading days later: keep a calendar margin of twice that.
    keep = ~np.isnan(target) & (dates < before - pd.Timedelta(days=2 * horizon))
    days = np.unique(dates[keep])[-POOL_DAYS:]
    keep &= dates.isin(days)
    return features[keep].reset_index(drop=True), target[keep]


def training_rows_text(training_rows: dict) -> str:
    """One line saying which rows trained the model."""
    if not training_rows["pooled"]:
        return f"trained on {training_rows['own']} rows of its own universe"
    return (
        f"trained on {training_rows['own']} rows of its own universe and {training_rows['pooled']} rows pooled "
        f"from {training_rows['pooled_from']}: fewer than {POOL_BELOW_SYMBOLS} symbols are too few to learn from alone"
    )
