"""The regime rows a user could pick instead of the model: a Gaussian HMM, a jump model, an oracle.

Each is fit on the training days of a refit only and then read online: the answer for day t
uses rows up to t. Their settings are fixed here, before any test year was looked at
(docs/backtest.md says why):

- **HMM**: 3 states, Gaussian, full covariance, on the daily SPY log return (hmmlearn), read
  with the forward filter.
- **Jump model**: 2 states, jump penalty 50, on nine features of SPY's daily returns
  (exponentially weighted mean return, log downside deviation and Sortino ratio, half-lives
  5, 10 and 21 days), standardised and clipped at 3 standard deviations on the training days
  (jumpmodels, after Nystrup et al. 2020 and Shu, Yu and Mulvey 2024), read with its online
  dynamic program.
- **Oracle** (synthetic data only): the true regimes of the training days give a transition
  matrix and a Gaussian over the eight context columns per regime; a forward filter reads it.

An unsupervised state is named by the mean return and volatility of its training days through
the rule baseline's own thresholds, so every row speaks in the same five regimes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from trader_ml.baselines import DEFAULT_RULES, RegimeRules, window_classes
from trader_ml.schema import REGIMES, TRADING_DAYS_PER_YEAR
from trader_ml.training.labeller import gaussian_log_density

HMM_STATES = 3
JUMP_STATES = 2
JUMP_PENALTY = 50.0
JUMP_HALF_LIVES = (5, 10, 21)
CLIP_STDS = 3.0


def log_returns(spy_return_1d: np.ndarray) -> np.ndarray:
    return np.log1p(np.asarray(spy_return_1d, dtype=float))


def name_states(
    returns: np.ndarray, states: np.ndarray, n_states: int, rules: RegimeRules = DEFAULT_RULES
) -> np.ndarray:
    """The regime index of each state, from the mean daily log return and volatility of the
    days assigned to it, classified by the rules' thresholds (a state with no days: choppy)."""
    trend, vol = np.zeros(n_states), np.full(n_states, np.nan)
    for s in range(n_states):
        days = returns[states == s]
        if len(days) > 1:
            trend[s] = days.mean() * rules.window
            vol[s] = days.std(ddof=1) * np.sqrt(TRADING_DAYS_PER_YEAR)
    signals = {
        "direction": trend / rules.trend_unit,
        "vol": vol,
        "panic_vol": vol,
        "stress": np.zeros(n_states),
    }
    names = window_classes(signals, rules)
    return np.where(names < 0, REGIMES.index("choppy"), names)


def to_regime_probs(state_probs: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Sum the probabilities of states that share a regime name: (days, states) -> (days, 5)."""
    out = np.zeros((len(state_probs), len(REGIMES)))
    for s, regime in enumerate(names):
        out[:, regime] += state_probs[:, s]
    return out


def forward_filter(log_emission: np.ndarray, log_transition: np.ndarray, log_start: np.ndarray) -> np.ndarray:
    """P(state_t | observations up to t) of each day: (days, states).

    The recursion runs in probabilities rescaled every day (each day's emissions divided by
    their largest), which is exact and about fifty times faster than a log-space step; a day on
    which every reachable state's emission underflows is taken in log space instead."""
    n, k = log_emission.shape
    transition = np.exp(log_transition)
    emission = np.exp(log_emission - log_emission.max(axis=1, keepdims=True))
    out = np.empty((n, k))
    alpha = np.exp(log_start + log_emission[0] - logsumexp(log_start + log_emission[0]))
    out[0] = alpha
    for t in range(1, n):
        step = (alpha @ transition) * emission[t]
        total = step.sum()
        if total > 0:
            alpha = step / total
        else:
            with np.errstate(divide="ignore"):
                logs = logsumexp(np.log(alpha)[:, None] + log_transition, axis=0) + log_emission[t]
            alpha = np.exp(logs - logsumexp(logs))
        out[t] = alpha
    return out


def hmm_regime_probs(spy_return_1d: np.ndarray, train_days: int, seed: int = 0) -> np.ndarray:
    """Filtered regime probabilities of every day from a Gaussian HMM fit on the first
    ``train_days`` days; days before the first return are NaN."""
    import logging

    from hmmlearn.hmm import GaussianHMM

    logging.getLogger("hmmlearn").setLevel(logging.ERROR)  # its convergence chatter is not the user's concern
    r = log_returns(spy_return_1d)
    known = np.isfinite(r)
    train = r[:train_days][known[:train_days]]
    model = GaussianHMM(HMM_STATES, covariance_type="full", n_iter=100, random_state=seed)
    model.fit(train[:, None])
    names = name_states(train, model.predict(train[:, None]), HMM_STATES)
    x = r[known][:, None]
    with np.errstate(divide="ignore"):
        filtered = forward_filter(
            gaussian_log_density(x, model.means_, model.covars_), np.log(model.transmat_), np.log(model.startprob_)
        )
    out = np.full((len(r), len(REGIMES)), np.nan)
    out[known] = to_regime_probs(filtered, names)
    return out


def jump_features(spy_return_1d: np.ndarray) -> np.ndarray:
    """(days, 9): EWM mean return, log EWM downside deviation and EWM Sortino ratio at each
    half-life, from returns up to each day."""
    r = pd.Series(log_returns(spy_return_1d))
    columns = []
    for half_life in JUMP_HALF_LIVES:
        mean = r.ewm(halflife=half_life).mean()
        downside = np.sqrt((r.clip(upper=0.0) ** 2).ewm(halflife=half_life).mean())
        columns += [mean, np.log(downside + 1e-8), mean / (downside + 1e-8)]
    return np.column_stack([c.to_numpy() for c in columns])


def jump_regime_probs(spy_return_1d: np.ndarray, train_days: int, seed: int = 0) -> np.ndarray:
    """Online regime probabilities (0 or 1) of every day from a statistical jump model fit on
    the first ``train_days`` days."""
    from jumpmodels.jump import JumpModel

    r = log_returns(spy_return_1d)
    features = jump_features(spy_return_1d)
    known = np.isfinite(features).all(axis=1)
    train = known.copy()
    train[train_days:] = False
    mean, std = features[train].mean(axis=0), features[train].std(axis=0)
    std[std == 0] = 1.0
    x = np.clip((features[known] - mean) / std, -CLIP_STDS, CLIP_STDS)
    model = JumpModel(JUMP_STATES, jump_penalty=JUMP_PENALTY, random_state=seed)
    model.fit(x[train[known]])
    names = name_states(r[train], np.asarray(model.labels_), JUMP_STATES)
    states = np.asarray(model.predict_online(x))
    out = np.full((len(r), len(REGIMES)), np.nan)
    out[known] = to_regime_probs(np.eye(JUMP_STATES)[states], names)
    return out


def oracle_regime_probs(context: np.ndarray, truth: np.ndarray, train_days: int, ridge: float = 1e-6) -> np.ndarray:
    """Filtered regime probabilities of every day from a transition matrix and per-regime
    Gaussians over the context columns, both fit on the true regimes of the training days."""
    x = np.asarray(context, dtype=float)
    columns = np.isfinite(x[:train_days]).all(axis=0)
    x = x[:, columns]
    known = np.isfinite(x).all(axis=1)
    k = len(REGIMES)
    train_x, train_y = x[:train_days][known[:train_days]], np.asarray(truth)[:train_days][known[:train_days]]
    counts = np.ones((k, k))  # add-one: a transition never seen stays possible
    np.add.at(counts, (train_y[:-1], train_y[1:]), 1.0)
    transition = counts / counts.sum(axis=1, keepdims=True)
    overall = np.cov(train_x.T) + ridge * np.eye(x.shape[1])
    means, covariances = [], []
    for regime in range(k):
        rows = train_x[train_y == regime]
        if len(rows) > x.shape[1] + 1:
            means.append(rows.mean(axis=0))
            covariances.append(np.cov(rows.T) + ridge * np.eye(x.shape[1]))
        else:  # a regime too rare to fit: the overall spread around the overall mean
            means.append(train_x.mean(axis=0))
            covariances.append(overall)
    start = np.bincount(train_y, minlength=k) + 1.0
    filtered = forward_filter(
        gaussian_log_density(x[known], np.array(means), np.array(covariances)),
        np.log(transition),
        np.log(start / start.sum()),
    )
    out = np.full((len(x), k), np.nan)
    out[known] = filtered
    return out
