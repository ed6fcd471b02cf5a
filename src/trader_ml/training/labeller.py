"""Hindsight regime labels: the rules' centred answers, smoothed by a sticky Gaussian HMM.

The rules read 10 days later (``labels.regime_labels``) are noisy: one volatile week flips
them, so a network trained on them learns their flicker. Here they only seed a five-state
HMM whose states keep the regime names: each state's Gaussian is fit on the days inside long
runs of its rule class, the whole window is decoded with Viterbi under a sticky transition
matrix, and the Gaussians are refit on the decoded days a few rounds. The observations may look
``LABEL_REACH`` days ahead (windows centred on the day), and Viterbi reads the whole window:
labels are hindsight, which is what makes them labels; model inputs never are.

Settings were chosen on the simulator (seeds 0-4, against its true regimes) and nowhere else;
docs/models.md has the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from hmmlearn.stats import log_multivariate_normal_density

from trader_ml.schema import REGIMES
from trader_ml.training.labels import DEFAULT_LABEL_HORIZON, regime_labels

LABEL_REACH = 10  # half-width of the centred windows: the days ahead an observation reads
STRESS_COLUMNS = ("credit_spread_proxy", "vixy_return_21d", "risk_off_proxy")  # 21-day changes


@dataclass(frozen=True)
class LabellerConfig:
    stay_probability: float = 0.99  # the HMM's chance that tomorrow's regime is today's
    reach: int = LABEL_REACH  # the observations' windows span t - reach .. t + reach
    min_run: int = 21  # rule-label runs at least this long seed the states
    rounds: int = 5  # Viterbi decodes, each followed by a refit of the Gaussians
    min_coverage: float = 0.9  # a column joins when present on this share of the fitted days
    ridge: float = 1e-3  # added to each covariance's diagonal (standardised units)


DEFAULT_LABELLER = LabellerConfig()


def _centred(values: np.ndarray, window: int, reduce: str) -> np.ndarray:
    rolling = pd.Series(values).rolling(window, center=True, min_periods=window)
    return (rolling.mean() if reduce == "mean" else rolling.std()).to_numpy()


def observations(context: pd.DataFrame, reach: int = LABEL_REACH) -> np.ndarray:
    """(days, 7) what the HMM reads of each day: SPY's log return, its trend and log volatility
    over the ``2 reach + 1`` days centred on the day (21 by default), the tone's centred
    ``reach + 1``-day mean, and the three 21-day stress changes recorded ``reach`` days later.
    NaN where a column or a window is missing."""
    log_return = np.log1p(context["spy_return_1d"].to_numpy(dtype=float))
    window = 2 * reach + 1
    ahead = np.full(reach, np.nan)
    columns = [
        log_return,
        _centred(log_return, window, "mean") * 21.0,
        np.log(np.maximum(_centred(log_return, window, "std"), 1e-6)),
        _centred(context["gdelt_avg_tone"].to_numpy(dtype=float), reach + 1, "mean"),
    ]
    for name in STRESS_COLUMNS:  # with reach 10, the change over t-10 .. t+10 is the value recorded on t+10
        columns.append(np.r_[context[name].to_numpy(dtype=float)[reach:], ahead])
    return np.column_stack(columns)


def gaussian_log_density(x: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """log N(x_t; mean_s, cov_s) for every day t and state s: (days, states), by hmmlearn."""
    return log_multivariate_normal_density(x, means, covariances, "full")


def decode(x: np.ndarray, means: np.ndarray, covariances: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """The most likely state path (days,) of Gaussian states under ``transition`` and a uniform
    start: hmmlearn's Viterbi, the states' parameters set, nothing refit."""
    k = len(means)
    hmm = GaussianHMM(k, covariance_type="full", init_params="", params="")
    hmm.startprob_ = np.full(k, 1.0 / k)
    hmm.transmat_ = transition / transition.sum(axis=1, keepdims=True)
    hmm.means_, hmm.covars_ = means, covariances
    return hmm.decode(x, algorithm="viterbi")[1].astype(np.int64)


def long_runs(labels: np.ndarray, min_run: int) -> np.ndarray:
    """``labels`` with every run shorter than ``min_run`` days set to -1."""
    out = labels.copy()
    change = np.flatnonzero(np.diff(labels) != 0) + 1
    for lo, hi in zip(np.r_[0, change], np.r_[change, len(labels)], strict=True):
        if hi - lo < min_run:
            out[lo:hi] = -1
    return out


def hindsight_labels(
    context: pd.DataFrame,
    fit_days: int | None = None,
    config: LabellerConfig = DEFAULT_LABELLER,
    horizon: int = DEFAULT_LABEL_HORIZON,
    rules: np.ndarray | None = None,
) -> np.ndarray:
    """Regime index of each context row (-1 where unknown). The HMM is seeded from the rules
    read ``horizon`` days later (``rules``, when the caller has them already), fit on the first
    ``fit_days`` rows only (all when None), and decodes every row."""
    rules = regime_labels(context, horizon) if rules is None else rules
    fit_days = len(context) if fit_days is None else fit_days
    raw = observations(context, config.reach)
    present = np.isfinite(raw[:fit_days]).mean(axis=0) >= config.min_coverage
    usable = np.isfinite(raw[:, present]).all(axis=1) & (rules >= 0)
    rows = np.flatnonzero(usable)
    fitted = rows < fit_days
    if fitted.sum() == 0:
        return np.full(len(context), -1, dtype=np.int64)
    x = raw[np.ix_(rows, np.flatnonzero(present))]
    x = (x - x[fitted].mean(axis=0)) / np.maximum(x[fitted].std(axis=0), 1e-12)
    k = len(REGIMES)
    transition = np.full((k, k), (1.0 - config.stay_probability) / (k - 1))
    np.fill_diagonal(transition, config.stay_probability)
    states = long_runs(rules[rows], config.min_run)
    if len(set(states[fitted & (states >= 0)].tolist())) < 2:  # too short for long runs
        states = rules[rows]
    for _ in range(config.rounds):
        states = _decode_round(x, states, fitted, config.ridge, transition)
    labels = np.full(len(context), -1, dtype=np.int64)
    labels[rows] = states
    return labels


def _decode_round(x: np.ndarray, states: np.ndarray, fitted: np.ndarray, ridge: float, transition) -> np.ndarray:
    """Each state's Gaussian fit on the fitted days of that state, then the path decoded; a
    state with too few days to fit cannot be visited (the path moves among the others)."""
    fittable = [state for state in range(len(REGIMES)) if (fitted & (states == state)).sum() >= x.shape[1] + 2]
    means, covariances = [], []
    for state in fittable:
        days = x[fitted & (states == state)]
        means.append(days.mean(axis=0))
        covariances.append(np.cov(days.T).reshape(x.shape[1], x.shape[1]) + ridge * np.eye(x.shape[1]))
    path = decode(x, np.array(means), np.array(covariances), transition[np.ix_(fittable, fittable)])
    return np.asarray(fittable, dtype=np.int64)[path]
