"""Training labels: what each day turned out to be, read with the benefit of a few later days.

A regime label may look ``label_horizon`` trading days past its day (that is what makes it a
label); model inputs never do. The label of day t is the rule baseline's answer on day
t + horizon, so with the default 21-day window and a horizon of 10 the label judges the
window centred on t, smoothed over the previous ten such windows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.baselines import DEFAULT_RULES, RegimeRules, baseline_regimes
from trader_ml.schema import CONTEXT_FEATURES
from trader_ml.training.options import TrainOptions

DEFAULT_LABEL_HORIZON = TrainOptions.regime_label_horizon


def regime_labels(
    context: pd.DataFrame, horizon: int = DEFAULT_LABEL_HORIZON, rules: RegimeRules = DEFAULT_RULES
) -> np.ndarray:
    """Regime index of each context row; -1 where the rules cannot answer yet or the
    horizon runs past the data."""
    if horizon < 0:
        raise ValueError("label horizon must be >= 0")
    regimes, _ = baseline_regimes(context[list(CONTEXT_FEATURES)].to_numpy(dtype=float), rules)
    labels = np.full(len(regimes), -1, dtype=np.int64)
    if horizon < len(regimes):
        labels[: len(regimes) - horizon] = regimes[horizon:]
    return labels


HEALTH_HORIZON = 21  # trading days the health target looks ahead
WORST_FRACTION = 0.2  # the event: landing in the worst fifth of the universe
MIN_UNIVERSE = 5  # a day needs this many symbols with a known outcome for a fifth to mean anything


def _forward_worst_wide(features: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """``min_k P(t+k) / P(t) - 1`` over k = 1..horizon (not clipped at 0), date x symbol; NaN
    where a day of that window has no row (the end of the data, a late listing, a gap, a
    delisting). A gap removes only the windows that touch it."""
    pivot = features.pivot(index="date", columns="symbol", values="return_1d")
    returns = pivot.to_numpy(dtype=float)
    log_returns = np.log1p(returns)
    missing = np.isnan(log_returns)
    # Windowed sums from running totals: a missing day is counted, never summed, so it cannot
    # poison the days after it the way a running product with a NaN would.
    total = np.vstack([np.zeros((1, returns.shape[1])), np.cumsum(np.where(missing, 0.0, log_returns), axis=0)])
    holes = np.vstack([np.zeros((1, returns.shape[1])), np.cumsum(missing, axis=0)])
    n = len(returns)
    worst = np.full(returns.shape, np.inf)
    for k in range(1, horizon + 1):
        m = max(n - k, 0)  # rows whose day t+k is in the table: none when it is shorter than k
        ahead = np.full(returns.shape, np.nan)
        ahead[:m] = total[1 + k : 1 + k + m] - total[1 : 1 + m]  # returns of days t+1 .. t+k
        gap = np.ones(returns.shape, dtype=bool)
        gap[:m] = (holes[1 + k : 1 + k + m] - holes[1 : 1 + m]) > 0
        ahead[gap] = np.nan
        worst = np.fmin(worst, ahead) if k > 1 else ahead
        worst[np.isnan(ahead)] = np.nan
    return pd.DataFrame(np.expm1(worst), index=pivot.index, columns=pivot.columns)


def _rows(wide: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
    keys = pd.MultiIndex.from_frame(features[["date", "symbol"]])
    return wide.stack(future_stack=True).reindex(keys).to_numpy(dtype=float)


def forward_drawdown(features: pd.DataFrame, horizon: int = HEALTH_HORIZON) -> np.ndarray:
    """For each row, the worst close over the next ``horizon`` trading days relative to today's,
    ``min(0, min_k P(t+k) / P(t) - 1)``, rebuilt from the ``return_1d`` of later rows; NaN where
    any of those days is missing (the end of the data, or a gap in the symbol's rows)."""
    return np.minimum(_rows(_forward_worst_wide(features, horizon), features), 0.0)


def health_targets(features: pd.DataFrame, horizon: int = HEALTH_HORIZON) -> tuple[np.ndarray, np.ndarray]:
    """(target, forward drawdown) per row: target 0 for the worst fifth of that day's universe by
    forward outcome, 1 for the rest, NaN when unknown.

    The worst fifth is exactly ``round(0.2 n)`` names (at least one) of the n with a known
    outcome, ranked by the unclipped ``min_k P(t+k) / P(t) - 1``: the forward drawdown itself
    is 0 for every name that never closed below today, and ranking those ties would make the
    event rarer or commoner than its name says."""
    wide = _forward_worst_wide(features, horizon)
    values = wide.to_numpy()
    known = ~np.isnan(values)
    count = known.sum(axis=1)
    worst_names = np.maximum(np.round(count * WORST_FRACTION), 1.0)
    ranks = np.argsort(np.argsort(np.where(known, values, np.inf), axis=1, kind="stable"), axis=1)
    target = np.where(ranks < worst_names[:, None], 0.0, 1.0)
    target[~known | (count < MIN_UNIVERSE)[:, None]] = np.nan
    drawdown = np.minimum(values, 0.0)
    return (
        _rows(pd.DataFrame(target, index=wide.index, columns=wide.columns), features),
        _rows(pd.DataFrame(drawdown, index=wide.index, columns=wide.columns), features),
    )
