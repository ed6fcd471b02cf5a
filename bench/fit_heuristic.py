"""The heuristic health baseline's weights, refit where no test year can leak into them.

    python bench/fit_heuristic.py            # the bundled sample before 2005, and a synthetic market

Fits a logistic regression of the health target (not in the worst fifth over the next 21 days)
on the heuristic's five inputs, on sample days before 2005 (the health backtest tests 2005-2022)
and on 12 simulated years, and prints the weights as the heuristic writes them (volatility
weights summing to 1) with the mean daily rank correlation of the shipped and the refit score on
those same fitting days. Nothing here reads a test year.
"""

from __future__ import annotations

import datetime as dt
import tempfile

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from stores import sample_store, synthetic_store  # bench/stores.py

from trader_ml.baselines import baseline_health
from trader_ml.data.partitions import read_table
from trader_ml.schema import ASSET_FEATURES
from trader_ml.training.labels import health_targets
from trader_ml.training.metrics import per_date_rank_correlation

INPUTS = ("vol_63d", "vol_21d", "drawdown_63d", "return_63d", "rel_strength_63d")


def refit(features: pd.DataFrame, name: str) -> None:
    target, drawdown = health_targets(features)
    known = ~np.isnan(target)
    x = features[list(INPUTS)].to_numpy()[known]
    fit = LogisticRegression(C=1.0, max_iter=1000).fit(x, target[known])
    coef = fit.coef_[0]
    scale = -(coef[0] + coef[1])  # the heuristic writes -(w63 vol_63d + w21 vol_21d), w63 + w21 = 1
    weights = {k: round(float(c / scale), 3) for k, c in zip(INPUTS, coef, strict=True)}
    dates = features["date"].to_numpy()[known]
    shipped = baseline_health(features[list(ASSET_FEATURES)].to_numpy()[known])
    refit_score = x @ coef
    print(f"\n{name}: {known.sum()} rows, {len(np.unique(dates))} days")
    print("  refit weights (vol weights as fractions of their sum, the rest per unit of it):", weights)
    for label, score in (("shipped heuristic", shipped), ("refit", refit_score), ("-vol_63d", -x[:, 0])):
        print(f"  {label:18s} mean daily Spearman {per_date_rank_correlation(dates, score, drawdown[known]):.3f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = sample_store(tmp)
        refit(read_table(store, "features", None, None, dt.date(2004, 12, 31)), "sample before 2005")
        synthetic = synthetic_store(tmp, symbols=50, start=dt.date(2000, 1, 1), end=dt.date(2011, 12, 31))
        refit(read_table(synthetic, "features", None, None, None), "synthetic seed 0, 50 stocks, 2000-2011")


if __name__ == "__main__":
    main()
