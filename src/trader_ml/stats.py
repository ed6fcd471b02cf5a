"""The statistics every judgement uses: resampled days, intervals, Sharpe, drawdown, proper scores.

The gate, the backtest and the monitor all compare two series over the same days, and
neighbouring days are not independent: each resamples the days with the stationary bootstrap
(``arch``; the mean block length chosen for the daily series by Politis and White's rule) and
reads a 90% interval off the resampled statistic. The statistics take days on the last axis,
so one call scores a thousand resamples at once. A mean of overlapping 21-day outcomes gets a
Newey-West standard error instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from trader_ml.schema import TRADING_DAYS_PER_YEAR

CONFIDENCE = 0.90
BOOTSTRAP_SAMPLES = 1000
FALLBACK_BLOCK_DAYS = 10.0  # where the series is too short or flat for the rule to say
SHORT_SERIES = 40  # days: fewer and the block-length rule has too little to go on
RESAMPLE_CHUNKS = 10  # resamples scored in this many slices, so 1000 x days x rows stays small
EPS = 1e-6  # probabilities are held inside [EPS, 1 - EPS] before a log is taken


def mean_block_length(daily: np.ndarray) -> float:
    """Politis-White mean block length of the stationary bootstrap for a daily series, between 1
    day and a quarter of the series (NaN days are left out)."""
    from arch.bootstrap import optimal_block_length  # arch pulls in scipy.stats: 2 s, paid when judging only

    x = np.asarray(daily, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < SHORT_SERIES or np.ptp(x) == 0:
        return FALLBACK_BLOCK_DAYS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arch warns on near-flat series; the clip below decides then
        block = float(optimal_block_length(x)["stationary"].iloc[0])
    return float(np.clip(block, 1.0, len(x) / 4)) if np.isfinite(block) else FALLBACK_BLOCK_DAYS


def resamples(daily: np.ndarray, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES) -> np.ndarray:
    """Day indices of stationary-bootstrap resamples of the days of ``daily``: (samples, days)."""
    from arch.bootstrap import StationaryBootstrap

    bootstrap = StationaryBootstrap(mean_block_length(daily), np.arange(len(daily)), seed=np.random.default_rng(seed))
    return np.stack([positional[0] for positional, _ in bootstrap.bootstrap(samples)])


def over_resamples(statistic: Callable[..., np.ndarray], index: np.ndarray, *series: np.ndarray) -> np.ndarray:
    """``statistic`` of each resample: each series indexed by the rows of ``index`` (days on the
    last axis), in slices so the indexed copies stay small."""
    arrays = [np.asarray(s, dtype=float) for s in series]
    slices = np.array_split(index, min(RESAMPLE_CHUNKS, len(index)))
    return np.concatenate([np.asarray(statistic(*(a[rows] for a in arrays)), dtype=float) for rows in slices])


def interval(draws: np.ndarray) -> list[float]:
    """The central ``CONFIDENCE`` interval of resampled values (NaN draws left out)."""
    tail = (1 - CONFIDENCE) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every draw NaN: the interval is NaN
        return [float(np.nanquantile(draws, tail)), float(np.nanquantile(draws, 1 - tail))]


def sharpe(returns: np.ndarray) -> np.ndarray | float:
    """Annualised Sharpe ratio of daily returns over the last axis: mean / std (ddof 1) x
    sqrt(252), no risk-free rate; NaN where the returns do not vary or are fewer than two."""
    r = np.asarray(returns, dtype=float)
    if r.shape[-1] < 2:
        out = np.full(r.shape[:-1], np.nan)
    else:
        std = r.std(axis=-1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(std > 0, r.mean(axis=-1) / std * np.sqrt(TRADING_DAYS_PER_YEAR), np.nan)
    return float(out) if out.ndim == 0 else out


def drawdowns(returns: np.ndarray) -> np.ndarray:
    """Each day's fall from the highest point before it of the compounded returns (over the last
    axis), starting from 1: a fall from the start counts."""
    equity = np.cumprod(1.0 + np.asarray(returns, dtype=float), axis=-1)
    return equity / np.maximum(np.maximum.accumulate(equity, axis=-1), 1.0) - 1.0


def max_drawdown(returns: np.ndarray) -> np.ndarray | float:
    """Largest fall from a peak of the compounded returns over the last axis, e.g. -0.25; 0 when
    there is none."""
    out = drawdowns(returns).min(axis=-1, initial=0.0)
    return float(out) if out.ndim == 0 else out


def log_loss_rows(probability: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each row's log loss of a binary event (target 1) given its probability."""
    p = np.clip(np.asarray(probability, dtype=float), EPS, 1 - EPS)
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def brier_rows(probability: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each row's squared gap between its probability and what happened (0 or 1)."""
    return (np.asarray(probability, dtype=float) - np.asarray(target, dtype=float)) ** 2


def newey_west_se(values: np.ndarray, lags: int) -> float:
    """Standard error of the mean of a daily series whose neighbours are correlated up to
    ``lags`` days apart (Bartlett weights, by ``arch``); NaN days are left out."""
    from arch.covariance.kernel import Bartlett

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return float("nan")
    long_run = float(np.asarray(Bartlett(x, bandwidth=min(lags, len(x) - 1), force_int=False).cov.long_run).squeeze())
    return float(np.sqrt(max(long_run, 0.0) / len(x)))


def mean_with_se(values: np.ndarray, lags: int) -> dict:
    """Mean of the known days, its Newey-West standard error, t and the day count."""
    x = np.asarray(values, dtype=float)
    known = x[~np.isnan(x)]
    mean = float(known.mean()) if len(known) else float("nan")
    se = newey_west_se(x, lags)
    return {"mean": mean, "se": se, "t": mean / se if se and se > 0 else float("nan"), "days": int(len(known))}


def against_model(model: np.ndarray, other: np.ndarray, seed: int = 0) -> dict:
    """Model minus ``other`` in Sharpe and in max drawdown (positive: the model is better), each
    with its 90% stationary-bootstrap interval over the test days: the same resampled days for
    both rows, the block length from their daily difference."""
    model, other = np.asarray(model, dtype=float), np.asarray(other, dtype=float)
    index = resamples(model - other, seed)
    out = {}
    for name, stat in (("sharpe", sharpe), ("max_drawdown", max_drawdown)):
        out[f"{name}_difference"] = float(stat(model) - stat(other))
        out[f"{name}_interval"] = interval(over_resamples(lambda m, o, s=stat: s(m) - s(o), index, model, other))
    return out
