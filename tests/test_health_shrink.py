"""A small universe's calibration shrink: chosen by the worst own year, ranking kept."""

import numpy as np
import pandas as pd
import pytest

from trader_ml.stats import log_loss_rows
from trader_ml.training.health_shrink import SHRINKS, shrunk_platt, worst_year_shrink, year_gains

RATE = 0.8


def five_names(years: range, wrong_years: set[int], seed: int = 0):
    """Five names a day, one of them in the worst fifth (target 0); the logit points at it
    (low logit, low chance of staying healthy) in every year but ``wrong_years``, where it points
    at a healthy name instead."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(f"{years.start}-01-01", f"{years.stop - 1}-12-31")
    dates, logit, target = [], [], []
    for day in days:
        worst = rng.integers(5)
        pointed = (worst + 1) % 5 if day.year in wrong_years else worst
        for name in range(5):
            dates.append(day)
            target.append(0.0 if name == worst else 1.0)
            logit.append(-1.0 if name == pointed else 1.0)
    return np.array(logit), np.array(target), pd.DatetimeIndex(dates)


def test_a_score_right_every_year_keeps_its_whole_calibration():
    logit, target, dates = five_names(range(2001, 2006), set())
    gains = year_gains(logit, target, dates, (2.0, 0.0), RATE)
    assert sorted(gains) == list(SHRINKS)
    assert set(gains[1.0]) == {2001, 2002, 2003, 2004, 2005}
    assert worst_year_shrink(gains) == 1.0
    assert min(gains[1.0].values()) > 0


def test_one_wrong_year_pulls_the_probabilities_towards_the_base_rate_and_keeps_the_ranking():
    logit, target, dates = five_names(range(2001, 2006), {2003})
    gains = year_gains(logit, target, dates, (2.0, 0.0), RATE)
    shrink = worst_year_shrink(gains)
    assert shrink == min(SHRINKS)  # a year the score has backwards: the least confidence allowed
    assert min(gains[shrink].values()) > min(gains[1.0].values())
    slope, intercept = shrunk_platt((2.0, 0.0), shrink, RATE)
    assert slope == pytest.approx(2.0 * shrink) and slope > 0  # the ranking is unchanged
    # the shrunk map lies between the base rate and the Platt fit, in logit space
    z_full, z_shrunk = 2.0 * logit, slope * logit + intercept
    anchor = np.log(RATE / (1 - RATE))
    assert np.all(np.abs(z_shrunk - anchor) <= np.abs(z_full - anchor) + 1e-12)
    # and in the wrong year it loses less to the base rate than the whole calibration does
    year = dates.year == 2003
    base = log_loss_rows(np.full(year.sum(), RATE), target[year]).mean()
    full = log_loss_rows(1 / (1 + np.exp(-z_full[year])), target[year]).mean()
    shrunk = log_loss_rows(1 / (1 + np.exp(-z_shrunk[year])), target[year]).mean()
    assert base < shrunk < full


def test_short_years_are_judged_together_and_shrink_one_is_the_platt_fit():
    logit, target, dates = five_names(range(2001, 2002), set())
    short = dates < pd.Timestamp("2001-04-01")  # about 63 days: too few to judge alone
    gains = year_gains(logit[short], target[short], dates[short], (2.0, 0.0), RATE)
    assert all(list(g) == [0] for g in gains.values())
    assert shrunk_platt((1.5, -0.3), 1.0, RATE) == (1.5, -0.3)
