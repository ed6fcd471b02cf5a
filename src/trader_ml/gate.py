"""The promotion gate, per model: better than its baseline beyond doubt, not worse than the champion.

Test windows are short (with a year of data, about a month), so a point estimate alone would
promote on luck. The gate compares the candidate with its baseline and with the champion on the
same test days, resamples those days in blocks (the days are not independent) and passes a model
only when the low end of its interval against the baseline is above zero, a loss to the
champion beyond the tolerance is unlikely, and the window has at least ``MIN_TEST_DAYS`` days.
Each model is judged on its own: a health model that passes is not held back by a regime model
that does not. numpy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_TOLERANCE = 0.02
BOOTSTRAP_SAMPLES = 1000
BLOCK_DAYS = 10
CONFIDENCE = 0.90
MIN_TEST_DAYS = 20  # a month of trading days: fewer and two blocks of 10 days would decide


@dataclass(frozen=True)
class Comparison:
    """Candidate minus other on one metric: the point estimate and a bootstrap interval."""

    metric: str
    candidate: float
    other: float
    difference: float
    low: float  # (1 - CONFIDENCE) / 2 quantile of the resampled difference
    high: float


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    vs_baseline: Comparison
    vs_champion: Comparison | None
    test_days: int

    def to_dict(self) -> dict:
        return asdict(self)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present in ``y_true`` (as the reported metrics compute it)."""
    present = np.unique(y_true)
    matrix = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(matrix)[present].astype(float)
    denominator = matrix.sum(axis=0)[present] + matrix.sum(axis=1)[present]
    return float(np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)))


def block_resamples(n: int, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES, block: int = BLOCK_DAYS) -> np.ndarray:
    """Indices of moving-block bootstrap resamples of ``n`` consecutive days: (samples, n)."""
    rng = np.random.default_rng(seed)
    block = max(1, min(block, n))
    blocks = -(-n // block)
    starts = rng.integers(0, n - block + 1, size=(samples, blocks))
    return (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(samples, -1)[:, :n]


def compare(metric: str, score, candidate, other, n: int, seed: int = 0) -> Comparison:
    """``score(indices, predictions) -> float`` for the candidate and the other predictions, on
    all days and on each block resample of them."""
    point_c, point_o = score(np.arange(n), candidate), score(np.arange(n), other)
    diffs = np.array([score(idx, candidate) - score(idx, other) for idx in block_resamples(n, seed)])
    tail = (1 - CONFIDENCE) / 2
    return Comparison(
        metric,
        point_c,
        point_o,
        point_c - point_o,
        float(np.quantile(diffs, tail)),
        float(np.quantile(diffs, 1 - tail)),
    )


def regime_comparison(labels: np.ndarray, candidate: np.ndarray, other: np.ndarray, n_classes: int = 5) -> Comparison:
    """Macro-F1 against the labels, candidate vs other regime predictions (class indices)."""
    return compare(
        "test_f1_macro", lambda idx, pred: macro_f1(labels[idx], pred[idx], n_classes), candidate, other, len(labels)
    )


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties sharing their average rank (many forward drawdowns are exactly 0)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    group = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1
    mean_rank = np.bincount(group, np.arange(1, len(values) + 1)) / np.bincount(group)
    ranks = np.empty(len(values))
    ranks[order] = mean_rank[group]
    return ranks


def daily_rank_correlations(day_index: np.ndarray, score: np.ndarray, outcome: np.ndarray, n_days: int) -> np.ndarray:
    """Spearman correlation per day (NaN for days with under 5 names or no spread)."""
    out = np.full(n_days, np.nan)
    order = np.argsort(day_index, kind="stable")
    bounds = np.searchsorted(day_index[order], np.arange(n_days + 1))
    for d in range(n_days):
        rows = order[bounds[d] : bounds[d + 1]]
        if len(rows) < 5:
            continue
        a, b = average_ranks(score[rows]), average_ranks(outcome[rows])
        a, b = a - a.mean(), b - b.mean()
        denominator = np.sqrt((a * a).sum() * (b * b).sum())
        if denominator > 0:
            out[d] = (a * b).sum() / denominator
    return out


def health_comparison(
    day_index: np.ndarray, outcome: np.ndarray, candidate: np.ndarray, other: np.ndarray
) -> Comparison:
    """Mean daily rank correlation with the forward drawdown, candidate vs other scores."""
    n_days = int(day_index.max()) + 1
    by_day = {
        "candidate": daily_rank_correlations(day_index, candidate, outcome, n_days),
        "other": daily_rank_correlations(day_index, other, outcome, n_days),
    }
    return compare(
        "test_health_correlation",
        lambda idx, which: float(np.nanmean(by_day[which][idx])),
        "candidate",
        "other",
        n_days,
    )


def decide(
    vs_baseline: Comparison,
    vs_champion: Comparison | None,
    test_days: int,
    tolerance: float = DEFAULT_TOLERANCE,
    min_test_days: int = MIN_TEST_DAYS,
) -> GateDecision:
    """Pass when the test window has at least ``min_test_days`` days, the low end of the
    interval against the baseline is above zero and, if a champion exists, a loss to it beyond
    ``tolerance`` is unlikely: that interval's low end is at least ``-tolerance``."""
    name = vs_baseline.metric

    def fail(reason: str) -> GateDecision:
        return GateDecision(False, reason, vs_baseline, vs_champion, test_days)

    if test_days < min_test_days:
        return fail(f"only {test_days} test days; the gate needs at least {min_test_days}")
    baseline_interval = f"{CONFIDENCE:.0%} interval [{vs_baseline.low:+.3f}, {vs_baseline.high:+.3f}]"
    if not vs_baseline.low > 0:
        verdict = "does not beat" if not vs_baseline.difference > 0 else "cannot be told from"
        return fail(
            f"{verdict} its baseline on {name} ({vs_baseline.candidate:.3f} vs {vs_baseline.other:.3f}, "
            f"{baseline_interval})"
        )
    beats = (
        f"beats its baseline on {name} ({vs_baseline.candidate:.3f} vs {vs_baseline.other:.3f}, {baseline_interval})"
    )
    if vs_champion is None:
        return GateDecision(True, f"{beats}; no champion yet", vs_baseline, None, test_days)
    interval = f"[{vs_champion.low:+.3f}, {vs_champion.high:+.3f}]"
    if vs_champion.low >= -tolerance:
        return GateDecision(
            True,
            f"{beats}; not worse than the champion beyond {tolerance}: "
            f"difference {vs_champion.difference:+.3f}, {CONFIDENCE:.0%} interval {interval}",
            vs_baseline,
            vs_champion,
            test_days,
        )
    if vs_champion.high < -tolerance:
        verdict = "worse than the champion"
    else:
        verdict = f"cannot be told from the champion on {test_days} test days"
    return fail(
        f"{verdict} on {name}: difference {vs_champion.difference:+.3f}, "
        f"{CONFIDENCE:.0%} interval {interval}, tolerance {tolerance}"
    )
