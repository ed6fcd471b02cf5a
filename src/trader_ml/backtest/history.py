"""Every day of a history answered causally in one pass: what serving would have said each day.

Day t's answer reads rows up to t only (the model's rolling window, the rules' trailing
windows), so appending later rows never changes it. The cost is linear in the number of days:
the windows are strided views, run through ONNX Runtime in batches. numpy only, like serving.
"""

from __future__ import annotations

import numpy as np

from trader_ml.baselines import (
    baseline_health,
    baseline_regime_embedding,
    baseline_regimes,
)
from trader_ml.schema import REGIME_EMBEDDING_DIM, REGIMES, REQUIRED_CONTEXT_INDEX
from trader_ml.serving.artifacts import HealthModel, RegimeModel

BATCH_DAYS = 4096  # windows per ONNX call: large enough to amortise the call, small in memory


def regime_history(context: np.ndarray, model: RegimeModel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, 5), embeddings (N, 8)) for each of N context rows (oldest first, in
    CONTEXT_FEATURES order), each from that row and the rows before it.

    ``model`` None answers with the rule baseline. Rows without enough history before them, or
    whose window holds a missing SPY value, are NaN.
    """
    context = np.asarray(context, dtype=np.float64)
    n = len(context)
    probs = np.full((n, len(REGIMES)), np.nan)
    embeddings = np.full((n, REGIME_EMBEDDING_DIM), np.nan)
    if model is None:
        probs[:] = baseline_regimes(context)[1]
        ready = ~np.isnan(probs).any(axis=1)
        embeddings[ready] = baseline_regime_embedding(context[ready])
        return probs, embeddings
    lookback = model.lookback
    if n < lookback:
        return probs, embeddings
    views = np.lib.stride_tricks.sliding_window_view(context, lookback, axis=0).transpose(0, 2, 1)  # (n-L+1, L, F)
    spy_known = np.isfinite(views[:, :, REQUIRED_CONTEXT_INDEX]).all(axis=(1, 2)) & ~np.isinf(views).any(axis=(1, 2))
    ends = np.flatnonzero(spy_known)
    for lo in range(0, len(ends), BATCH_DAYS):
        chunk = ends[lo : lo + BATCH_DAYS]
        p, e = model.predict_proba(views[chunk])
        probs[chunk + lookback - 1] = p
        embeddings[chunk + lookback - 1] = e
    return probs, embeddings


def health_history(features: np.ndarray, model: HealthModel | None = None, day: np.ndarray | None = None) -> np.ndarray:
    """The health score of each feature row (ASSET_FEATURES or RAW_COLUMNS order): the model's
    calibrated probability, or the heuristic's when ``model`` is None. ``day`` labels each row's
    day: a row reads its own features and its day's universe (the rows sharing its label) and
    nothing else, so any history is answered in one batched pass."""
    features = np.asarray(features, dtype=np.float64)
    if model is None:
        return baseline_health(features)
    x = model.inputs(features, day)
    scores = np.empty(len(features))
    for lo in range(0, len(features), 65536):
        scores[lo : lo + 65536] = model.run_inputs(x[lo : lo + 65536]).probability
    return scores
