"""Volatility blends as health priors, ranked by year: which blend of day-relative log
volatilities ranks a universe's names like next month's drawdown, and how far a year falls below
-vol_63d (no training: a calibrated prior ranks as its blend does).

    python bench/bench_health_blends.py [--seeds 1,2,3,4] [--symbols 5] [--sample-until 2004]

Synthetic universes span 2000-2021 and are scored on 2012-2021 (the backtest's test years); the
bundled sample is scored only before ``--sample-until`` so its test years stay unseen.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile

import numpy as np
import pandas as pd
from stores import sample_store, synthetic_store  # bench/stores.py

from trader_ml.data.partitions import read_table
from trader_ml.health_inputs import RELATIVE_VOLS, frame_raw, model_inputs
from trader_ml.models.health import RELATIVE_INDEX
from trader_ml.training.labels import health_targets
from trader_ml.training.metrics import per_date_rank_correlation

# name: weight of each day-relative log volatility
BLENDS = {
    "vol_63d": {"vol_63d": 1.0},
    "mean 21/63/252": {"vol_21d": 1 / 3, "vol_63d": 1 / 3, "vol_252d": 1 / 3},
    "half-way": {"vol_21d": 1 / 6, "vol_63d": 2 / 3, "vol_252d": 1 / 6},
    "mean 63/126/252": {"vol_63d": 1 / 3, "vol_126d": 1 / 3, "vol_252d": 1 / 3},
    "ewm 42": {"vol_ewm_42d": 1.0},
}


def yearly(features: pd.DataFrame, first_year: int, last_year: int) -> pd.DataFrame:
    """Mean daily Spearman of each blend with the forward drawdown, by year."""
    _, drawdown = health_targets(features)
    x = model_inputs(frame_raw(features), features["date"].to_numpy())
    dates = pd.DatetimeIndex(features["date"])
    keep = ~np.isnan(drawdown) & (dates.year >= first_year) & (dates.year <= last_year)
    out = {}
    for name, vols in BLENDS.items():
        value = -sum(w * x[:, RELATIVE_INDEX[RELATIVE_VOLS.index(v)]] for v, w in vols.items())
        out[name] = {
            year: per_date_rank_correlation(
                dates[keep & (dates.year == year)],
                value[keep & (dates.year == year)],
                drawdown[keep & (dates.year == year)],
            )
            for year in range(first_year, last_year + 1)
        }
    return pd.DataFrame(out)


def show(name: str, table: pd.DataFrame) -> None:
    gain = table.sub(table["vol_63d"], axis=0)
    print(f"\n== {name}: mean daily Spearman by year, minus vol_63d's")
    print(gain.round(3).to_string())
    print("mean gain:", gain.mean().round(4).to_dict())
    print("worst year:", gain.min().round(3).to_dict())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="1,2,3,4")
    parser.add_argument("--symbols", type=int, default=5)
    parser.add_argument("--sample-until", type=int, default=2004)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds.split(","):
            store = synthetic_store(f"{tmp}/{seed}", int(seed), args.symbols, dt.date(2000, 1, 1))
            show(f"synthetic seed {seed}, {args.symbols} symbols", yearly(read_table(store, "features"), 2012, 2021))
        if args.sample_until:
            table = yearly(read_table(sample_store(tmp), "features"), 1992, args.sample_until)
            show(f"sample 1992-{args.sample_until} (20 names)", table)


if __name__ == "__main__":
    main()
