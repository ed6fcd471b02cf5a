"""The promotion gate, per model: no worse than what would serve instead, not worse than the champion.

Test windows can be short, so a point estimate alone would decide on luck. The gate compares
the candidate with what serves without it and with the champion on the same test days,
resamples those days with the stationary bootstrap (``trader_ml.stats``: neighbouring days are
not independent) and reads each check off the interval: the health model must beat its
references beyond doubt; the regime model, whose exposure a model that knows nothing leaves at
variance targeting's, must not be behind its rule baseline or variance targeting alone beyond
the noise. A loss to the champion beyond the tolerance must be unlikely, and the window must
have at least ``MIN_TEST_DAYS`` days. Each model is judged on its own: a health model that
passes is not held back by a regime model that does not.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from trader_ml.exposure import served_returns
from trader_ml.stats import CONFIDENCE, against_model, interval, log_loss_rows, max_drawdown, resamples, sharpe
from trader_ml.training.metrics import daily_rank_correlations, macro_f1_rows
from trader_ml.training.options import TrainOptions

DEFAULT_TOLERANCE = TrainOptions.tolerance
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


BEATS, NOT_WORSE, NOT_BEHIND = "beats", "not worse", "not behind"
CHAMPION = "the champion"
VARIANCE_TARGETING = "variance targeting alone"  # what the portfolio holds when no regime model serves
METRIC_WORDS = {
    "test_f1_macro": "macro-F1",
    "test_log_loss": "log loss",
    "test_health_correlation": "rank correlation with the forward drawdown",
    "served_sharpe": "the served exposure's Sharpe",
    "served_max_drawdown": "the served exposure's max drawdown",
}


@dataclass(frozen=True)
class Check:
    """One comparison and the rule it must meet: ``beats`` (the whole interval on the better
    side), ``not worse`` (a loss beyond ``margin``, in the metric's units, unlikely) or ``not
    behind`` (the interval reaches zero or better: no loss beyond the noise);
    ``higher_is_better``: the metric's direction."""

    against: str  # what the candidate is held to, in words: "its rule baseline", "the champion"
    comparison: Comparison
    rule: str = BEATS
    margin: float = 0.0
    higher_is_better: bool = True

    def _ahead(self) -> tuple[float, float, float]:
        """(difference, low, high), signed so that above zero is the candidate being better."""
        c = self.comparison
        return (c.difference, c.low, c.high) if self.higher_is_better else (-c.difference, -c.high, -c.low)

    def passes(self) -> bool:
        _, low, high = self._ahead()
        if self.rule == NOT_BEHIND:
            return high >= 0
        return low > 0 if self.rule == BEATS else low >= -self.margin

    def said(self, test_days: int) -> str:
        """What the check found, in words: why it passes, or why it does not."""
        c, (ahead, _, high) = self.comparison, self._ahead()
        numbers = (
            f"{c.candidate:.4f} vs {c.other:.4f}, difference {c.difference:+.4f}, "
            f"{CONFIDENCE:.0%} interval [{c.low:+.4f}, {c.high:+.4f}]"
        )
        metric = METRIC_WORDS.get(c.metric, c.metric)
        if self.rule == BEATS:
            if self.passes():
                return f"beats {self.against} on {metric} ({numbers})"
            # "cannot be told from" only when the interval holds zero: a bootstrap's point estimate
            # can lie outside its own interval, and an interval wholly behind is a loss
            verb = "is worse than" if high < 0 else "cannot be told from" if ahead > 0 else "does not beat"
            return f"{verb} {self.against} on {metric} ({numbers})"
        if self.rule == NOT_BEHIND:
            found = "not behind" if self.passes() else "is worse than"
            return f"{found} {self.against} on {metric} beyond the noise ({numbers})"
        if self.passes():
            return f"not worse than {self.against} beyond {self.margin:g} on {metric} ({numbers})"
        if high < -self.margin:
            return f"worse than {self.against} on {metric} beyond {self.margin:g} ({numbers})"
        return f"may be worse than {self.against} on {metric} by more than {self.margin:g} ({numbers}; {test_days} test days)"

    def to_dict(self) -> dict:
        return {
            "against": self.against,
            **asdict(self.comparison),
            "rule": self.rule,
            "margin": self.margin,
            "direction": "higher is better" if self.higher_is_better else "lower is better",
            "passed": self.passes(),
        }


@dataclass(frozen=True)
class GateDecision:
    kind: str
    promote: bool
    reason: str
    test_days: int
    checks: tuple[Check, ...]  # every check the decision read, in the order it read them
    headline: int = 0  # the check the tables show: the strongest reference the candidate is held to

    @property
    def vs_reference(self) -> Check:
        return self.checks[self.headline]

    @property
    def vs_champion(self) -> Check | None:
        return next((c for c in self.checks if c.against == CHAMPION), None)

    def to_dict(self) -> dict:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "test_days": self.test_days,
            "headline": self.headline,
            "checks": [c.to_dict() for c in self.checks],
        }


Score = Callable[[np.ndarray, object], np.ndarray]  # (rows of day indices, which) -> one value per row


def compare(metric: str, score: Score, candidate, other, daily: np.ndarray, seed: int = 0) -> Comparison:
    """Candidate minus other on all days and on each resample of them; ``daily`` is the per-day
    series whose dependence sets the resamples' block length."""
    every = np.arange(len(daily))[None, :]
    point_c, point_o = float(score(every, candidate)[0]), float(score(every, other)[0])
    index = resamples(daily, seed)
    low, high = interval(score(index, candidate) - score(index, other))
    return Comparison(metric, point_c, point_o, point_c - point_o, low, high)


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


def decide(
    kind: str,
    checks: list[Check],
    test_days: int,
    min_test_days: int = MIN_TEST_DAYS,
    champion_note: str | None = None,
    headline: int = 0,
) -> GateDecision:
    """Pass when the window has ``min_test_days`` days and every check passes; the reason is the
    first check that does not, or what each found. Without a champion check, ``champion_note``
    says why (else: no champion yet)."""
    checks = tuple(checks)

    def verdict(promote: bool, reason: str) -> GateDecision:
        return GateDecision(kind, promote, reason, test_days, checks, headline)

    if test_days < min_test_days:
        return verdict(False, f"only {test_days} test days; the gate needs at least {min_test_days}")
    for check in checks:
        if not check.passes():
            return verdict(False, check.said(test_days))
    found = [check.said(test_days) for check in checks]
    if not any(c.against == CHAMPION for c in checks):
        found.append(champion_note or "no champion yet")
    return verdict(True, "; ".join(found))


def served_comparisons(spy_return_1d: np.ndarray, probs: np.ndarray, rows: np.ndarray, prior: dict) -> list[Comparison]:
    """The risk budget the candidate would serve on its test days against variance targeting
    alone (what the portfolio holds when it is held back): Sharpe and max drawdown, each with the
    paired interval of the difference (``stats.against_model``)."""
    budget, alone = served_returns(spy_return_1d, probs, rows, prior)
    vs = against_model(budget, alone)
    out = []
    for name, stat in (("sharpe", sharpe), ("max_drawdown", max_drawdown)):
        low, high = vs[f"{name}_interval"]
        out.append(
            Comparison(f"served_{name}", float(stat(budget)), float(stat(alone)), vs[f"{name}_difference"], low, high)
        )
    return out


def regime_checks(
    vs_baseline: Comparison, vs_champion: Comparison | None, tolerance: float, served: list[Comparison] | None = None
) -> list[Check]:
    """The regime gate judges what is served: macro-F1 not behind the rule baseline's beyond the
    noise (the answer the bot reads instead), the served exposure's Sharpe and max drawdown not
    behind variance targeting alone's beyond the noise, and a macro-F1 loss to the champion beyond
    ``tolerance`` unlikely. Without ``served`` (an artifact without its exposure prior) macro-F1
    must beat the rule baseline beyond doubt, as before the risk budget."""
    if served is None:
        checks = [Check("its rule baseline", vs_baseline)]
    else:
        checks = [Check("its rule baseline", vs_baseline, NOT_BEHIND)]
        checks += [Check(VARIANCE_TARGETING, c, NOT_BEHIND) for c in served]
    if vs_champion is not None:
        checks.append(Check(CHAMPION, vs_champion, NOT_WORSE, tolerance))
    return checks


def health_checks(
    vs_references: dict[str, Comparison], rank: Comparison, vs_champion: Comparison | None, tolerance: float
) -> tuple[list[Check], int]:
    """The health gate, a probability judged as one: log loss below every reference's beyond
    doubt; a rank correlation with the forward drawdown not below -vol_63d's by more than
    ``RANK_MARGIN``; a log loss above the champion's by more than ``tolerance x LOG_LOSS_SCALE``
    unlikely. Also the position of the strongest reference (the lowest log loss), the headline."""
    checks = [Check(f"the {name}", c, higher_is_better=False) for name, c in vs_references.items()]
    headline = min(range(len(checks)), key=lambda i: checks[i].comparison.other)
    checks.append(Check("-vol_63d", rank, NOT_WORSE, RANK_MARGIN))
    if vs_champion is not None:
        checks.append(Check(CHAMPION, vs_champion, NOT_WORSE, tolerance * LOG_LOSS_SCALE, higher_is_better=False))
    return checks, headline
