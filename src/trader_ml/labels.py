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

DEFAULT_LABEL_HORIZON = 10


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


def _forward_drawdown_wide(features: pd.DataFrame, horizon: int) -> pd.DataFrame:
    returns = features.pivot(index="date", columns="symbol", values="return_1d")
    log_price = np.log1p(returns.to_numpy()).cumsum(axis=0)  # a NaN poisons every later day
    worst = np.full(log_price.shape, np.nan)
    for k in range(1, horizon + 1):
        ahead = np.full(log_price.shape, np.nan)
        ahead[:-k] = log_price[k:] - log_price[:-k]
        worst = ahead if k == 1 else np.where(np.isnan(ahead), np.nan, np.fmin(worst, ahead))
    return pd.DataFrame(np.minimum(np.expm1(worst), 0.0), index=returns.index, columns=returns.columns)


def _rows(wide: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
    keys = pd.MultiIndex.from_frame(features[["date", "symbol"]])
    return wide.stack(future_stack=True).reindex(keys).to_numpy(dtype=float)


def forward_drawdown(features: pd.DataFrame, horizon: int = HEALTH_HORIZON) -> np.ndarray:
    """For each row, the worst close over the next ``horizon`` trading days relative to today's,
    ``min(0, min_k P(t+k) / P(t) - 1)``, rebuilt from the ``return_1d`` of later rows; NaN where
    any of those days is missing (the end of the data, or a gap in the symbol's rows)."""
    return _rows(_forward_drawdown_wide(features, horizon), features)


def health_targets(features: pd.DataFrame, horizon: int = HEALTH_HORIZON) -> tuple[np.ndarray, np.ndarray]:
    """(target, forward drawdown) per row: target 1 when the asset does NOT land in the worst
    fifth of that day's universe by forward drawdown, 0 when it does, NaN when unknown."""
    wide = _forward_drawdown_wide(features, horizon)
    values = wide.to_numpy()
    known = (~np.isnan(values)).sum(axis=1)
    cutoff = np.full(len(values), np.nan)
    enough = known >= MIN_UNIVERSE
    cutoff[enough] = np.nanquantile(values[enough], WORST_FRACTION, axis=1)
    target = np.where(values <= cutoff[:, None], 0.0, 1.0)
    target[np.isnan(values) | ~enough[:, None]] = np.nan
    return _rows(pd.DataFrame(target, index=wide.index, columns=wide.columns), features), _rows(wide, features)
