"""The served prior's Platt scaling on a small universe, shrunk towards the pooled training fit:
each test year's log loss minus the base rate's, for several shrinkage strengths (no training:
with no learned correction the served score is the calibrated prior).

    python bench/bench_health_platt.py [--seeds 1,2,3,4] [--symbols 5]

Each test year 2012-2021 refits as the backtest does (every row before January 1 of that year,
the purged split of ``prepare``, the bundled sample pooled in below ten names), sets the prior
on the training rows, then maps it to a probability by a logistic fit on the validation days,
shrunk towards the training fit (slope 1, intercept 0) with weight n / (n + k) for n
validation rows. k = 0 is today's served scaling; k = inf serves the training fit unchanged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import tempfile

import numpy as np
import pandas as pd
import torch
from stores import synthetic_store  # bench/stores.py

from trader_ml.data.partitions import read_table
from trader_ml.health_inputs import frame_raw, model_inputs
from trader_ml.models.health import HealthNet
from trader_ml.stats import log_loss_rows
from trader_ml.training.health import HealthTrainConfig, fit_prior, prepare
from trader_ml.training.health_references import logistic
from trader_ml.training.health_shrink import shrunk_platt, worst_year_shrink, year_gains
from trader_ml.training.labels import health_targets

STRENGTHS = (0.0, 250.0, 1000.0, 4000.0, 16000.0, math.inf)
EPS = 1e-6
WORST_SHARE = 0.2  # the worst fifth


def day_count_probability(logit: np.ndarray, day: np.ndarray, slope: float) -> np.ndarray:
    """P(not in the worst fifth) that knows each day's count c of worst names: the day's chances
    of being among them are c x softmax(-slope x logit), so they sum to c (slope 0: the base rate)."""
    _, group = np.unique(day, return_inverse=True)
    group = group.reshape(-1)
    size = np.bincount(group)
    count = np.round(size * WORST_SHARE)
    z = -slope * logit
    z = z - np.bincount(group, z)[group] / size[group]  # centred per day, for exp's range
    e = np.exp(z)
    worst = count[group] * e / np.bincount(group, e)[group]
    return 1 - np.clip(worst, EPS, 1 - EPS)


def fit_day_count_slope(logit: np.ndarray, day: np.ndarray, target: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    fit = minimize_scalar(
        lambda a: log_loss(day_count_probability(logit, day, a), target), bounds=(0, 10), method="bounded"
    )
    return float(fit.x)


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(log_loss_rows(p, y).mean())


def year_losses(features: pd.DataFrame, year: int, config: HealthTrainConfig) -> dict[str, float]:
    """Each strength's test-year log loss minus the base rate's (the own training rows' rate)."""
    dates = pd.DatetimeIndex(features["date"])
    train_frame = features[dates < pd.Timestamp(year, 1, 1)].reset_index(drop=True)
    prep = prepare(train_frame, config)
    model = HealthNet(config.model)
    model.inputs.fit(prep.train_x)
    fit_prior(model, prep)
    with torch.no_grad():
        val_logit = model.prior_logit(torch.as_tensor(prep.values[prep.val])).numpy().astype(float)
    (slope,), intercept = logistic(val_logit[:, None], prep.target[prep.val])
    n = len(val_logit)
    val_day = prep.row_date[prep.val].to_numpy()
    day_slope = fit_day_count_slope(val_logit, val_day, prep.target[prep.val])
    target, _ = health_targets(features)
    in_year = (dates.year == year) & ~np.isnan(target)
    test = features[in_year]
    x = model_inputs(frame_raw(test), test["date"].to_numpy()).astype(np.float32)
    with torch.no_grad():
        logit = model.prior_logit(torch.as_tensor(x)).numpy().astype(float)
    y = target[in_year]
    rate = float(np.mean(prep.target[prep.train]))
    base = log_loss(np.full(len(y), rate), y)
    out = {}
    for k in STRENGTHS:
        w = 0.0 if math.isinf(k) else n / (n + k)
        s, b = w * slope + (1 - w) * 1.0, w * intercept
        out[f"k={k:g}"] = log_loss(1 / (1 + np.exp(-(s * logit + b))), y) - base
    test_day = test["date"].to_numpy()
    for share in (1.0, 0.5):
        out[f"day-count x{share:g}"] = log_loss(day_count_probability(logit, test_day, share * day_slope), y) - base
    own = np.concatenate([prep.train, prep.val])  # the refit's own training and validation days
    with torch.no_grad():
        own_logit = model.prior_logit(torch.as_tensor(prep.values[own])).numpy().astype(float)
    gains = year_gains(own_logit, prep.target[own], prep.row_date[own], (slope, intercept), rate)
    shrink = worst_year_shrink(gains)
    s, b = shrunk_platt((slope, intercept), shrink, rate)
    out["worst-year shrink"] = log_loss(1 / (1 + np.exp(-(s * logit + b))), y) - base
    # the alternative: the best mean own year among shrinks whose worst own year loses at most 0.005
    allowed = [k for k in gains if min(gains[k].values()) >= -0.005] or [shrink]
    budget = max(allowed, key=lambda k: np.mean(list(gains[k].values())))
    s, b = shrunk_platt((slope, intercept), budget, rate)
    out["budget shrink"] = log_loss(1 / (1 + np.exp(-(s * logit + b))), y) - base
    out["val slope"], out["val intercept"], out["day slope"] = float(slope), float(intercept), day_slope
    out["shrink"], out["budget"] = shrink, budget
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="1,2,3,4")
    parser.add_argument("--symbols", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = HealthTrainConfig()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds.split(","):
            store = synthetic_store(f"{tmp}/{seed}", int(seed), args.symbols, dt.date(2000, 1, 1))
            features = read_table(store, "features")
            table = pd.DataFrame({year: year_losses(features, year, config) for year in range(2012, 2022)}).T
            print(f"\n== synthetic seed {seed}, {args.symbols} symbols: log loss - base rate by test year")
            print(table.round(4).to_string())
            losses = table[[c for c in table.columns if c.startswith(("k=", "day-count", "worst-year", "budget "))]]
            print("mean:", losses.mean().round(4).to_dict())
            print("worst year:", losses.max().round(4).to_dict())
            print("years above the base rate:", (losses > 0).sum().to_dict())


if __name__ == "__main__":
    main()
