"""What knowing the regime late is worth: the backtest's exposure rule fed regimes known L days late.

    python bench/bench_regime_delay.py [--seeds 0,1,2,3,4] [--lags 0,5,11,13,15,18,21,31,42]
    python bench/bench_regime_delay.py --predictions BACKTEST/predictions.parquet [--row gru]

On the bundled S&P 500 sample the regimes are the hindsight labels fit on every day (the
networks' training target), and those each yearly refit of the backtest trains on; on the simulator, its true regimes and the same hindsight labels.
The regime of day t - L sets the exposure held on day t (10 bp per unit changed), so L is a
detection delay. A label reads days up to t + 10, so a delay of 10 or less leaks the held day's
return into its own label; from 11 on, a curve says what a detector that learns each regime
L days after it happened could earn at most. Nothing is trained; it chooses nothing.

With ``--predictions`` (a regime backtest's ``predictions.parquet``) it prints instead how well a
row's regime agrees with the label of L days before: the lag where it agrees best is how late
that model detects the regimes.
"""

from __future__ import annotations

import argparse
import datetime as dt

import numpy as np
import pandas as pd

from trader_ml.backtest.allocation import performance
from trader_ml.data.features import context_rows
from trader_ml.data.sources.sample import SampleSource
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.exposure import delayed, delayed_exposure_returns
from trader_ml.schema import REGIMES
from trader_ml.training.labeller import hindsight_labels

COST_BP = 10.0


def delayed_sharpe(regimes: np.ndarray, market_returns: np.ndarray, judged: np.ndarray, lag: int) -> float:
    """Sharpe over the ``judged`` days of holding the exposure of the regime ``lag`` days
    before (fully invested where that regime is unknown)."""
    returns = delayed_exposure_returns(regimes, market_returns, np.flatnonzero(judged), lag, COST_BP)
    return performance(returns, np.ones(len(returns)))["sharpe"]


def refit_labels(context: pd.DataFrame, first_year: int) -> np.ndarray:
    """Each year's hindsight labels as that year's refit has them: the HMM fit on the years
    before it, decoding through 30 days past the year (-1 before ``first_year``)."""
    years = context["date"].dt.year.to_numpy()
    out = np.full(len(context), -1, dtype=np.int64)
    for year in range(first_year, int(years.max()) + 1):
        window = context.iloc[: int((years <= year).sum()) + 30].reset_index(drop=True)
        labels = hindsight_labels(window, fit_days=int((years < year).sum()))
        days = np.flatnonzero(years == year)
        out[days] = labels[days]
    return out


def curve(regimes: np.ndarray, market_returns: np.ndarray, judged: np.ndarray, lags: list[int]) -> list[str]:
    return [f"{delayed_sharpe(regimes, market_returns, judged, lag):.2f}" for lag in lags]


def agreement_by_lag(predictions: pd.DataFrame, row: str, lags: list[int]) -> None:
    """Accuracy and macro-F1 of ``row``'s regime on day t against the label of day t - L."""
    from sklearn.metrics import f1_score

    said = predictions[f"{row}_regime"].map({name: i for i, name in enumerate(REGIMES)}).to_numpy()
    labels = predictions["label"].to_numpy(dtype=np.int64)
    print("| lag | accuracy | macro-F1 |\n|---|---|---|")
    for lag in lags:
        earlier = delayed(labels, lag)
        known = earlier >= 0
        accuracy = float((said[known] == earlier[known]).mean())
        f1 = f1_score(earlier[known], said[known], average="macro")
        print(f"| {lag} | {accuracy:.3f} | {f1:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--lags", default="0,5,11,13,15,18,21,31,42")
    parser.add_argument("--predictions", help="a regime backtest's predictions.parquet")
    parser.add_argument("--row", default="gru", help="the row of --predictions to read (gru, rules, hmm, ...)")
    args = parser.parse_args()
    lags = [int(x) for x in args.lags.split(",")]
    if args.predictions:
        agreement_by_lag(pd.read_parquet(args.predictions), args.row, lags)
        return
    print("| regimes | buy-and-hold | " + " | ".join(f"L={lag}" for lag in lags) + " |")
    print("|---|---|" + "---|" * len(lags))

    source = SampleSource()
    context = context_rows(source.fetch(*source.default_range(dt.date.today())))
    market = context["spy_return_1d"].to_numpy(dtype=float)
    labels = hindsight_labels(context)
    early = ((context["date"] >= "1991-01-01") & (context["date"] < "2000-01-01")).to_numpy()
    late = (context["date"] >= "2000-01-01").to_numpy()
    for name, regimes, judged in (
        ("S&P 500 1991-1999, hindsight labels", labels, early),
        ("S&P 500 2000-2022, hindsight labels", labels, late),
        ("S&P 500 2000-2022, each refit's labels", refit_labels(context, 2000), late),
    ):
        hold = performance(market[judged], np.ones(judged.sum()))["sharpe"]
        print(f"| {name} | {hold:.2f} | " + " | ".join(curve(regimes, market, judged, lags)) + " |")

    for seed in (int(s) for s in args.seeds.split(",")):
        raw = SyntheticSource(SyntheticParams(seed=seed, n_symbols=1)).fetch(dt.date(2000, 1, 1), dt.date(2019, 12, 31))
        context = context_rows(raw)
        truth = pd.Series(raw.truth_regime).reindex(context["date"]).to_numpy(dtype=np.int64)
        market = context["spy_return_1d"].to_numpy(dtype=float)
        judged = np.arange(len(context)) >= 252  # after the first year
        hold = performance(market[judged], np.ones(judged.sum()))["sharpe"]
        for name, regimes in (("true regimes", truth), ("hindsight labels", hindsight_labels(context))):
            print(
                f"| simulator seed {seed}, {name} | {hold:.2f} | "
                + " | ".join(curve(regimes, market, judged, lags))
                + " |"
            )


if __name__ == "__main__":
    main()
