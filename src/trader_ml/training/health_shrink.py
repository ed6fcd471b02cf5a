"""A small universe's calibration, shrunk towards the base rate as far as its own worst year asks.

With five names exactly one lands in the worst fifth every day, so the base rate is a perfectly
calibrated constant and a score beats it only by ranking. In a year where the volatility prior
ranks the names badly, a calibration confident enough to help in other years loses to the
constant. So a small universe's Platt scaling (fit on validation days) is pulled towards the base
rate in logit space, ``z = s x (slope x logit + intercept) + (1 - s) x logit(rate)``, with the
shrink ``s`` that maximises the worst calendar year's log-loss gain over the base rate on the
refit's own training and validation days. The map stays linear in the logit (the artifact's
calibration pair holds it) and ``s`` never reaches 0, so the ranking is kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.stats import EPS, log_loss_rows

SHRINKS = tuple(round(0.1 * k, 1) for k in range(1, 11))  # 0.1 .. 1.0; 0 would forget the ranking
MIN_YEAR_DAYS = 126  # a calendar year with fewer own days is too noisy to judge alone


def year_gains(
    logit: np.ndarray, target: np.ndarray, dates: pd.DatetimeIndex, platt: tuple[float, float], rate: float
) -> dict[float, dict[int, float]]:
    """Each shrink's log-loss gain over the base rate (base minus shrunk score) per calendar year
    with at least ``MIN_YEAR_DAYS`` days; all rows as one group when no year has that many."""
    rate = float(np.clip(rate, EPS, 1 - EPS))
    anchor = np.log(rate / (1 - rate))
    years = np.asarray(dates.year)
    days_per_year = pd.Series(dates.normalize()).groupby(years).nunique()
    judged = [int(y) for y, n in days_per_year.items() if n >= MIN_YEAR_DAYS]
    groups = {y: years == y for y in judged} or {0: np.ones(len(years), dtype=bool)}
    base = log_loss_rows(np.full(len(target), rate), target)
    slope, intercept = platt
    out: dict[float, dict[int, float]] = {}
    for shrink in SHRINKS:
        z = shrink * (slope * logit + intercept) + (1 - shrink) * anchor
        loss = log_loss_rows(1 / (1 + np.exp(-z)), target)
        out[shrink] = {y: float(base[rows].mean() - loss[rows].mean()) for y, rows in groups.items()}
    return out


def worst_year_shrink(gains: dict[float, dict[int, float]]) -> float:
    """The shrink whose worst year gains most over the base rate (the smaller one on a tie)."""
    return max(SHRINKS, key=lambda s: (round(min(gains[s].values()), 6), -s))


def shrunk_platt(platt: tuple[float, float], shrink: float, rate: float) -> tuple[float, float]:
    """The (slope, intercept) of the shrunk map, for the artifact's calibration pair."""
    rate = float(np.clip(rate, EPS, 1 - EPS))
    anchor = float(np.log(rate / (1 - rate)))
    slope, intercept = platt
    return shrink * slope, shrink * intercept + (1 - shrink) * anchor
