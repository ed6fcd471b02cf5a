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
