"""The promotion gate, per model: better than its baseline beyond doubt, not worse than the champion.

Test windows can be short, so a point estimate alone would promote on luck. The gate compares
the candidate with its baseline and with the champion on the same test days, resamples those
days with the stationary bootstrap (``arch``; the mean block length chosen for the daily series
by Politis and White's rule, since neighbouring days are not independent) and passes a model
only when the low end of its interval against the baseline is above zero, a loss to the
champion beyond the tolerance is unlikely, and the window has at least ``MIN_TEST_DAYS`` days.
Each model is judged on its own: a health model that passes is not held back by a regime model
that does not.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from trader_ml.training.metrics import daily_rank_correlations, macro_f1_rows
from trader_ml.training.options import TrainOptions

DEFAULT_TOLERANCE = TrainOptions.tolerance
BOOTSTRAP_SAMPLES = 1000
FALLBACK_BLOCK_DAYS = 10.0  # where the series is too short or flat for the rule to say
CONFIDENCE = 0.90
MIN_TEST_DAYS = 20  # a month of trading days: fewer and two blocks of 10 days would decide
RANK_MARGIN = 0.01  # a health score may rank below -vol_63d by at most this (non-inferiority)
# A log loss moves about a quarter as far as a correlation between two useful scores (0.50 for
# the base rate, 0.44 for a good score): the champion tolerance for log loss is scaled so.
LOG_LOSS_SCALE = 0.25


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
    checks: dict[str, Comparison] = field(default_factory=dict)  # every comparison the decision read

    def to_dict(self) -> dict:
        return asdict(self)


def mean_block_length(daily: np.ndarray) -> float:
    """Politis-White mean block length of the stationary bootstrap for a daily series, between 1
    day and a quarter of the series (NaN days are left out)."""
    from arch.bootstrap import optimal_block_length  # arch pulls in scipy.stats: 2 s, paid when judging only

    x = np.asarray(daily, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2 * MIN_TEST_DAYS or np.ptp(x) == 0:
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


Score = Callable[[np.ndarray, object], np.ndarray]  # (rows of day indices, which) -> one value per row


def compare(metric: str, score: Score, candidate, other, daily: np.ndarray, seed: int = 0) -> Comparison:
    """Candidate minus other on all days and on each resample of them; ``daily`` is the per-day
    series whose dependence sets the resamples' block length."""
    every = np.arange(len(daily))[None, :]
    point_c, point_o = float(score(every, candidate)[0]), float(score(every, other)[0])
    index = resamples(daily, seed)
    diffs = score(index, candidate) - score(index, other)
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
    daily = (candidate == labels).astype(float) - (other == labels).astype(float)
    return compare(
        "test_f1_macro", lambda idx, pred: macro_f1_rows(labels[idx], pred[idx], n_classes), candidate, other, daily
    )


def health_comparison(dates: np.ndarray, outcome: np.ndarray, candidate: np.ndarray, other: np.ndarray) -> Comparison:
    """Mean daily rank correlation with the forward drawdown, candidate vs other scores."""
    by_day = {
        "candidate": daily_rank_correlations(dates, candidate, outcome),
        "other": daily_rank_correlations(dates, other, outcome),
    }
    days = by_day["candidate"].index.union(by_day["other"].index)
    by_day = {k: v.reindex(days).to_numpy() for k, v in by_day.items()}

    def score(idx: np.ndarray, which: str) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample of days none of which qualifies
            return np.nanmean(by_day[which][idx], axis=1)

    return compare("test_health_correlation", score, "candidate", "other", by_day["candidate"] - by_day["other"])


def log_loss_comparison(days: np.ndarray, target: np.ndarray, candidate: np.ndarray, other: np.ndarray) -> Comparison:
    """Mean daily log loss of the event, candidate vs other probabilities (lower is better);
    ``days`` numbers each row's test day from 0, and every day weighs the same."""
    from trader_ml.training.health_references import log_loss_rows

    days = np.asarray(days)
    count = np.bincount(days)
    present = count > 0
    by_day = {
        which: (np.bincount(days, log_loss_rows(p, target), len(count)) / np.maximum(count, 1))[present]
        for which, p in (("candidate", candidate), ("other", other))
    }

    def score(idx: np.ndarray, which: str) -> np.ndarray:
        return by_day[which][idx].mean(axis=1)

    return compare("test_log_loss", score, "candidate", "other", by_day["candidate"] - by_day["other"])


def _interval(c: Comparison) -> str:
    return f"{CONFIDENCE:.0%} interval [{c.low:+.4f}, {c.high:+.4f}]"


def decide_health(
    vs_references: dict[str, Comparison],
    rank_check: Comparison,
    vs_champion: Comparison | None,
    test_days: int,
    tolerance: float = DEFAULT_TOLERANCE,
    min_test_days: int = MIN_TEST_DAYS,
    champion_note: str | None = None,
) -> GateDecision:
    """The health gate, a probability judged as one. Pass when the window has ``min_test_days``
    days; the log loss is below every reference's beyond doubt (the high end of each interval of
    the difference is below zero); the rank correlation is not below -vol_63d's by more than
    ``RANK_MARGIN`` (the low end of that interval at least -RANK_MARGIN); and, with a champion, a
    log loss above its by more than ``tolerance x LOG_LOSS_SCALE`` is unlikely."""
    strongest = min(vs_references.values(), key=lambda c: c.other)
    checks = {**{f"vs {name}": c for name, c in vs_references.items()}, "rank vs -vol_63d": rank_check}
    if vs_champion is not None:
        checks["vs champion"] = vs_champion

    def verdict(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, strongest, vs_champion, test_days, checks)

    if test_days < min_test_days:
        return verdict(False, f"only {test_days} test days; the gate needs at least {min_test_days}")
    for name, c in vs_references.items():
        if not c.high < 0:
            said = "does not beat" if not c.difference < 0 else "cannot be told from"
            return verdict(False, f"{said} the {name} on log loss ({c.candidate:.4f} vs {c.other:.4f}, {_interval(c)})")
    if rank_check.low < -RANK_MARGIN:
        return verdict(
            False,
            f"may rank worse than -vol_63d by more than {RANK_MARGIN} (correlation with the forward drawdown "
            f"{rank_check.candidate:.3f} vs {rank_check.other:.3f}, {_interval(rank_check)})",
        )
    beats = (
        f"beats the base rate and every calibrated reference on log loss ({strongest.candidate:.4f} vs "
        f"{strongest.other:.4f} for the best of them, {_interval(strongest)}) and ranks no worse than -vol_63d "
        f"({rank_check.candidate:.3f} vs {rank_check.other:.3f})"
    )
    if vs_champion is None:
        return verdict(True, f"{beats}; {champion_note or 'no champion yet'}")
    allowed = tolerance * LOG_LOSS_SCALE
    said = f"log loss difference {vs_champion.difference:+.4f}, {_interval(vs_champion)}"
    if vs_champion.high <= allowed:
        return verdict(True, f"{beats}; not worse than the champion beyond {allowed:g}: {said}")
    worse = "worse than the champion" if vs_champion.low > allowed else "cannot be told from the champion"
    return verdict(False, f"{worse} on log loss: {said}, tolerance {allowed:g}")


def decide(
    vs_baseline: Comparison,
    vs_champion: Comparison | None,
    test_days: int,
    tolerance: float = DEFAULT_TOLERANCE,
    min_test_days: int = MIN_TEST_DAYS,
    champion_note: str | None = None,
) -> GateDecision:
    """Pass when the test window has at least ``min_test_days`` days, the low end of the
    interval against the baseline is above zero and, if a champion exists, a loss to it beyond
    ``tolerance`` is unlikely: that interval's low end is at least ``-tolerance``. Without a
    champion comparison, ``champion_note`` says why (else: no champion yet)."""
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
        return GateDecision(True, f"{beats}; {champion_note or 'no champion yet'}", vs_baseline, None, test_days)
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
