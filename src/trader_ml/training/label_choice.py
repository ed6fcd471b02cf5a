"""Choose the regime labels' window and persistence inside a refit, on its own training days.

A hindsight label of a window reaching ``reach`` days past its day is known ``reach`` days late
at best, and on real history a regime is worth knowing for about two weeks (docs/benchmarks.md),
so the window is a design choice, not a constant. Each candidate labeller is judged by what
its labels would earn if a causal model knew them ``reach + DETECTION_LAG`` days late (the GRU
was measured 12 days late with the 10-day reach): the exposure rule of the backtest held on
the day after, 10 bp per unit changed, over the last ``VALIDATION_YEARS`` years of the rows it
is given, each year labelled by an HMM fit only on the years before it. No network is trained
(about 0.05 s a candidate), and the caller hands it only its training days, so nothing on or
after the refit date, nor the model's own validation and test windows, is read.

The candidates and the rule were written down before any test year was looked at
(docs/models.md); the default labeller wins ties and short histories.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from trader_ml.exposure import delayed_exposure_returns
from trader_ml.schema import TRADING_DAYS_PER_YEAR
from trader_ml.training.labeller import DEFAULT_LABELLER, LabellerConfig, hindsight_labels

REACHES = (3, 5, 10)  # the labels' windows: 7, 11 and 21 days centred on the day
STAYS = (0.95, 0.99)  # the labelling HMM's persistence: regimes of about 20 and 100 days
DETECTION_LAG = 2  # days a causal reader trails a label beyond the label's own reach
VALIDATION_YEARS = 5
MIN_FIT_YEARS = 3  # an HMM fit before the first validation year needs this many years


def candidates(base: LabellerConfig, horizon: int) -> tuple[LabellerConfig, ...]:
    """Every labeller judged, ``base`` first (it wins a tie); none reaches further ahead than
    the rule labels' ``horizon``, which the purge gaps of the split are sized for."""
    others = [replace(base, reach=r, stay_probability=s) for r in REACHES for s in STAYS if r <= horizon]
    return (base, *[c for c in others if c != base])


@dataclass(frozen=True)
class LabelChoice:
    labeller: LabellerConfig
    scores: dict[str, float]  # candidate name -> validated Sharpe (empty when not judged)
    validation: tuple[str, str] | None  # first and last validation day, or None
    reason: str

    def summary(self) -> dict:
        return {
            "reach": self.labeller.reach,
            "stay_probability": self.labeller.stay_probability,
            "validated_sharpe": self.scores,
            "validation_days": list(self.validation) if self.validation else None,
            "reason": self.reason,
        }


def name(config: LabellerConfig) -> str:
    return f"reach {config.reach}, stay {config.stay_probability:g}"


def validation_years(dates: pd.Series) -> list[int]:
    """The last VALIDATION_YEARS whole calendar years of ``dates`` that leave MIN_FIT_YEARS of
    fitting before them (fewer, or none, on a short history)."""
    years = dates.dt.year.to_numpy()
    counts = pd.Series(years).value_counts()
    whole = sorted(y for y in counts.index if counts[y] >= 0.9 * TRADING_DAYS_PER_YEAR)
    first = int(years.min()) + MIN_FIT_YEARS
    return [y for y in whole if y >= first][-VALIDATION_YEARS:]


def validated_sharpe(context: pd.DataFrame, config: LabellerConfig, years: list[int], horizon: int) -> float:
    """Sharpe over the days of ``years`` of holding each day the exposure of the label of
    ``reach + DETECTION_LAG`` days before; each year labelled by an HMM fit on the days before
    it, decoding only through the days that year's labels can read."""
    dates = context["date"].dt.year.to_numpy()
    market = context["spy_return_1d"].to_numpy(dtype=float)
    returns = []
    for year in years:
        fit_days = int((dates < year).sum())
        end = min(len(context), int((dates <= year).sum()) + config.reach)
        labels = hindsight_labels(context.iloc[:end].reset_index(drop=True), fit_days, config, horizon)
        days = np.flatnonzero(dates[:end] == year)
        returns.append(delayed_exposure_returns(labels, market[:end], days, config.reach + DETECTION_LAG))
    pooled = np.concatenate(returns)
    std = pooled.std(ddof=1)
    return float(pooled.mean() / std * np.sqrt(TRADING_DAYS_PER_YEAR)) if std > 0 else float("nan")


def choose_labeller(context: pd.DataFrame, horizon: int, base: LabellerConfig = DEFAULT_LABELLER) -> LabelChoice:
    """The candidate with the best validated Sharpe on the last years of ``context`` (the
    caller's training days only); ``base`` when too few years are given or nothing beats it."""
    years = validation_years(context["date"])
    if len(years) < 2:
        return LabelChoice(base, {}, None, f"fewer than {MIN_FIT_YEARS + 2} whole years: the default labeller")
    judged = candidates(base, horizon)
    scores = {name(c): validated_sharpe(context, c, years, horizon) for c in judged}
    best = max(judged, key=lambda c: np.nan_to_num(scores[name(c)], nan=-np.inf))
    in_years = context["date"][context["date"].dt.year.isin(years)]
    span = (str(in_years.iloc[0].date()), str(in_years.iloc[-1].date()))
    return LabelChoice(best, scores, span, f"best validated Sharpe over {years[0]}-{years[-1]}")
