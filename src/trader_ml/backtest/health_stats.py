"""Daily measures of a health score across assets.

Each day gives one number per measure: the Spearman correlation of the score with the forward
21-day drawdown, the AUC of the score for "not in the worst fifth", and (for scores that claim
to be probabilities) the log loss and the Brier score. Consecutive days' 21-day outcomes overlap, so the
standard error of a mean over days uses Newey-West with as many lags as the horizon
(``trader_ml.stats.mean_with_se``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.stats import brier_rows, log_loss_rows
from trader_ml.training.metrics import daily_rank_correlations

MIN_NAMES = 5  # a day needs this many assets with a known outcome to be scored


def daily_measures(
    dates: np.ndarray, score: np.ndarray, drawdown: np.ndarray, target: np.ndarray, probability: bool
) -> pd.DataFrame:
    """One row per day (index: date): ``spearman``, ``auc``, ``log_loss`` and ``brier`` (NaN where undefined:
    fewer than 5 names, no spread, one outcome only, or not a probability)."""
    frame = pd.DataFrame({"date": dates, "score": score, "drawdown": drawdown, "target": target}).dropna()
    spearman = daily_rank_correlations(frame["date"].to_numpy(), frame["score"], frame["drawdown"], MIN_NAMES)
    positive = frame["target"].to_numpy() == 1.0
    parts = pd.DataFrame(
        {
            "date": frame["date"].to_numpy(),
            "pos": positive.astype(float),
            "pos_rank": np.where(positive, frame.groupby("date")["score"].rank().to_numpy(), 0.0),
            "sq_error": brier_rows(frame["score"].to_numpy(), frame["target"].to_numpy()),
            "log_loss": log_loss_rows(frame["score"].to_numpy(), frame["target"].to_numpy()) if probability else 0.0,
        }
    )
    sums = parts.groupby("date", sort=True).agg(
        pos=("pos", "sum"),
        pos_rank=("pos_rank", "sum"),
        brier=("sq_error", "mean"),
        log_loss=("log_loss", "mean"),
        names=("pos", "size"),
    )
    enough = sums["names"] >= MIN_NAMES
    neg = sums["names"] - sums["pos"]
    both = (sums["pos"] > 0) & (neg > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Mann-Whitney: the share of (healthy, unhealthy) pairs the score orders correctly.
        auc = (sums["pos_rank"] - sums["pos"] * (sums["pos"] + 1) / 2) / (sums["pos"] * neg)
    return pd.DataFrame(
        {
            "spearman": spearman.reindex(sums.index),
            "auc": auc.where(enough & both),
            "log_loss": sums["log_loss"].where(enough) if probability else np.nan,
            "brier": sums["brier"].where(enough) if probability else np.nan,
            "names": sums["names"],
        }
    )
