"""The probabilities a health score must beat: the base rate, and the heuristic, -vol_63d and
-vol_21d each mapped to a probability by a logistic fit on the training rows.

``health_score`` claims to be the chance of not landing in the worst fifth of the day's
universe over the next 21 days. A claim like that is judged by a proper score (log loss, with
Brier beside it) against what a user could have without the model: always saying the training
rows' rate, or a one-line score calibrated on the same rows the model trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trader_ml.baselines import baseline_health
from trader_ml.health_inputs import MIN_VOL, RAW_COLUMNS
from trader_ml.schema import ASSET_FEATURES
from trader_ml.stats import EPS

BASE_RATE = "base rate"
CALIBRATED = ("heuristic", "-vol_63d", "-vol_21d")
REFERENCES = (BASE_RATE, *(f"calibrated {name}" for name in CALIBRATED))


def signal(name: str, raw: np.ndarray) -> np.ndarray:
    """The 1-d score a reference calibrates, from raw rows (RAW_COLUMNS order, or the ten)."""
    if name == BASE_RATE:
        return np.zeros(len(raw))
    if name == "calibrated heuristic":
        p = np.clip(baseline_health(np.asarray(raw, dtype=float)[:, : len(ASSET_FEATURES)]), EPS, 1 - EPS)
        return np.log(p / (1 - p))
    column = RAW_COLUMNS.index(name.removeprefix("calibrated -"))
    return -np.log(np.maximum(np.asarray(raw, dtype=float)[:, column], MIN_VOL))


@dataclass(frozen=True)
class Reference:
    """One reference row: probability = sigmoid(slope x signal + intercept)."""

    name: str
    slope: float
    intercept: float

    def probability(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * signal(self.name, raw) + self.intercept)))


def logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(weights, intercept) of an almost unpenalised logistic regression of y on the columns of x."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e4, max_iter=1000).fit(np.asarray(x, dtype=float), np.asarray(y, dtype=int))
    return fit.coef_[0].astype(float), float(fit.intercept_[0])


def fit_references(raw: np.ndarray, target: np.ndarray) -> dict[str, Reference]:
    """Every reference, calibrated on these (training) rows and their known targets."""
    rate = float(np.clip(np.mean(target), EPS, 1 - EPS))
    out = {BASE_RATE: Reference(BASE_RATE, 0.0, float(np.log(rate / (1 - rate))))}
    for name in REFERENCES[1:]:
        weights, intercept = logistic(signal(name, raw)[:, None], target)
        out[name] = Reference(name, float(weights[0]), intercept)
    return out
