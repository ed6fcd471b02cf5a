"""training.gate: the comparisons, the checks as data, one decision function for both models, and
the checks as the manifest and ``models show`` record them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from trader_ml import registry
from trader_ml.training.gate import (
    BEATS,
    CHAMPION,
    NOT_BEHIND,
    NOT_WORSE,
    VARIANCE_TARGETING,
    Check,
    Comparison,
    compare,
    decide,
    health_checks,
    log_loss_comparison,
    regime_checks,
    regime_comparison,
    served_comparisons,
)
from trader_ml.training.metrics import macro_f1_rows

from .conftest import main_here


def test_macro_f1_of_resamples_matches_scikit_learn_row_by_row():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, (6, 300)), rng.integers(0, 5, (6, 300))
    y[0] = np.where(y[0] == 3, 0, y[0])  # a row where a class never occurs
    expected = [
        f1_score(a, b, labels=sorted(set(a)), average="macro", zero_division=0) for a, b in zip(y, p, strict=True)
    ]
    assert macro_f1_rows(y, p, 5) == pytest.approx(expected)


def test_identical_predictions_have_a_zero_interval():
    y = np.repeat(np.arange(5), 10)
    c = regime_comparison(y, y, y.copy())
    assert (c.difference, c.low, c.high) == (0.0, 0.0, 0.0)


def test_block_bootstrap_widens_with_fewer_days():
    rng = np.random.default_rng(1)

    def width(n):
        y = rng.integers(0, 3, n)
        a = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
        b = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
        daily = (a == y).astype(float) - (b == y).astype(float)
        c = compare("f1", lambda idx, p: macro_f1_rows(y[idx], p[idx], 3), a, b, daily)
        return c.high - c.low

    assert width(30) > width(600)


def test_log_loss_comparison_is_exact_and_its_own_interval_is_zero():
    rng = np.random.default_rng(4)
    days = np.repeat(np.arange(40), 5)
    target = (rng.random(200) < 0.8).astype(float)
    good = np.where(target == 1, 0.85, 0.6)
    flat = np.full(200, 0.8)
    same = log_loss_comparison(days, target, good, good.copy())
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    c = log_loss_comparison(days, target, good, flat)
    expected = -(target * np.log(good) + (1 - target) * np.log(1 - good))
    assert c.candidate == pytest.approx(expected.reshape(40, 5).mean(axis=1).mean())
    assert c.other == pytest.approx(-(0.8 * np.log(0.8) + 0.2 * np.log(0.2)), abs=0.05)
    assert c.high < 0  # a score that knows the outcomes beats the base rate beyond doubt


def _c(diff: float, low: float, high: float, candidate: float = 0.6, other: float = 0.5) -> Comparison:
    return Comparison("test_f1_macro", candidate, other, diff, low, high)


def _ll(diff: float, low: float, high: float, candidate: float = 0.45, other: float = 0.47) -> Comparison:
    return Comparison("test_log_loss", candidate, other, diff, low, high)


@pytest.mark.parametrize(
    "check, passes",
    [
        (Check("x", _c(0.1, 0.01, 0.2)), True),  # higher is better: the whole interval above zero
        (Check("x", _c(0.1, 0.0, 0.2)), False),  # touching zero is not beyond doubt
        (Check("x", _ll(-0.02, -0.03, -0.01), higher_is_better=False), True),  # lower is better: all below zero
        (Check("x", _ll(-0.02, -0.03, 0.001), higher_is_better=False), False),
        (Check("x", _c(-0.01, -0.02, 0.0), NOT_WORSE, 0.02), True),  # within the margin
        (Check("x", _c(-0.01, -0.03, 0.0), NOT_WORSE, 0.02), False),
        (Check("x", _ll(0.002, -0.001, 0.005), NOT_WORSE, 0.005, higher_is_better=False), True),
        (Check("x", _ll(0.002, -0.001, 0.006), NOT_WORSE, 0.005, higher_is_better=False), False),
        (Check("x", _c(-0.3, -0.6, 0.0), NOT_BEHIND), True),  # the interval reaches zero
        (Check("x", _c(-0.3, -0.6, -0.01), NOT_BEHIND), False),  # wholly behind
        (Check("x", _ll(0.01, -0.001, 0.02), NOT_BEHIND, higher_is_better=False), True),
        (Check("x", _ll(0.01, 0.001, 0.02), NOT_BEHIND, higher_is_better=False), False),
    ],
)
def test_a_check_reads_its_rule_margin_and_direction(check, passes):
    assert check.passes() is passes
    recorded = check.to_dict()
    assert recorded["passed"] is passes and recorded["rule"] in (BEATS, NOT_WORSE, NOT_BEHIND)
    assert recorded["direction"] == ("higher is better" if check.higher_is_better else "lower is better")


@pytest.mark.parametrize(
    "comparison, said",
    [
        (_c(0.02, -0.01, 0.05), "cannot be told from"),  # ahead, the interval holds zero
        (_c(-0.02, -0.05, 0.01), "does not beat"),
        (_c(0.01, -0.04, -0.002), "is worse than"),  # a point outside its own interval, wholly behind
        (_c(-0.03, -0.05, -0.01), "is worse than"),
    ],
)
def test_cannot_be_told_apart_is_said_only_when_the_interval_holds_zero(comparison, said):
    text = Check("its rule baseline", comparison).said(100)
    assert text.startswith(f"{said} its rule baseline")
    if comparison.high < 0 or comparison.low > 0:
        assert "cannot be told" not in text


def test_the_regime_gate():
    beats = _c(0.1, 0.01, 0.2)

    def regime(vs_baseline, vs_champion=None, days=30):
        return decide("regime", regime_checks(vs_baseline, vs_champion, 0.02), days)

    assert not regime(_c(-0.1, -0.2, 0.0, 0.4, 0.5)).promote  # loses to the baseline
    tie = regime(_c(0.0, -0.1, 0.1, 0.5, 0.5))
    assert not tie.promote and "does not beat its rule baseline on macro-F1" in tie.reason
    lucky = regime(_c(0.1, -0.02, 0.2))  # ahead, but the interval reaches below zero
    assert not lucky.promote and "cannot be told from its rule baseline" in lucky.reason
    short = regime(beats, days=19)
    assert not short.promote and "only 19 test days; the gate needs at least 20" in short.reason
    first = regime(beats)
    assert first.promote and first.vs_champion is None and first.reason.endswith("no champion yet")
    assert regime(beats, _c(-0.01, -0.015, 0.02)).promote  # not worse beyond 0.02
    worse = regime(beats, _c(-0.2, -0.3, -0.1))
    assert not worse.promote and "worse than the champion on macro-F1 beyond 0.02" in worse.reason
    unsure = regime(beats, _c(0.05, -0.3, 0.4), days=25)
    assert not unsure.promote and "may be worse than the champion on macro-F1 by more than 0.02" in unsure.reason
    assert "25 test days" in unsure.reason and "cannot be told" not in unsure.reason


def _served(sharpe: tuple[float, float, float], drawdown: tuple[float, float, float]) -> list[Comparison]:
    return [
        Comparison("served_sharpe", 0.5, 0.5 - sharpe[0], *sharpe),
        Comparison("served_max_drawdown", -0.2, -0.2 - drawdown[0], *drawdown),
    ]


def test_the_regime_gate_judges_what_is_served():
    """With the risk budget served, the regime model passes when neither its answer (macro-F1
    against the rule baseline's) nor its exposure (Sharpe and drawdown against variance
    targeting alone's) is behind beyond the noise; the champion check is unchanged."""

    def regime(vs_baseline, served, vs_champion=None):
        return decide("regime", regime_checks(vs_baseline, vs_champion, 0.02, served), 250)

    level = _served((0.0, -0.2, 0.2), (0.01, -0.05, 0.06))
    tie = regime(_c(0.0, -0.1, 0.1), level)  # a model that knows nothing serves what the fallback does
    assert tie.promote and [c.against for c in tie.checks] == ["its rule baseline", *[VARIANCE_TARGETING] * 2]
    assert "not behind variance targeting alone on the served exposure's Sharpe beyond the noise" in tie.reason
    worse_labels = regime(_c(-0.1, -0.2, -0.01), level)
    assert not worse_labels.promote and "is worse than its rule baseline on macro-F1" in worse_labels.reason
    losing = regime(_c(0.2, 0.1, 0.3), _served((-0.4, -0.7, -0.1), (0.0, -0.1, 0.1)))
    assert not losing.promote
    assert losing.reason.startswith("is worse than variance targeting alone on the served exposure's Sharpe")
    deeper = regime(_c(0.2, 0.1, 0.3), _served((0.1, -0.1, 0.3), (-0.08, -0.12, -0.02)))
    assert not deeper.promote and "the served exposure's max drawdown" in deeper.reason
    behind_champion = regime(_c(0.2, 0.1, 0.3), level, _c(-0.2, -0.3, -0.1))
    assert not behind_champion.promote and "worse than the champion on macro-F1 beyond 0.02" in behind_champion.reason


def test_served_comparisons_hold_the_risk_budget_against_variance_targeting():
    """Probabilities that always say the training days' mix serve variance targeting exactly: a
    zero difference with a zero interval; a model that is out while the market rises loses Sharpe."""
    from trader_ml.exposure import EXPOSURE_WEIGHTS

    rng = np.random.default_rng(0)
    spy = rng.normal(0.0005, 0.01, 600)
    rows = np.arange(300, 600)
    mix = np.full((len(rows), 5), 0.2)
    prior = {"vol_target": 0.15, "center": float(EXPOSURE_WEIGHTS.mean()), "strength": 1.0}
    sharpes, drawdowns = served_comparisons(spy, mix, rows, prior)
    assert (sharpes.metric, drawdowns.metric) == ("served_sharpe", "served_max_drawdown")
    assert (sharpes.difference, sharpes.low, sharpes.high) == (0.0, 0.0, 0.0)
    assert drawdowns.difference == 0.0
    # out (the no-exposure regime) while the market rises, fully in while it falls
    market = np.where(np.arange(600) < 450, np.abs(spy), -np.abs(spy))
    wrong = np.array([np.eye(5)[2] if r < 449 else np.eye(5)[0] for r in rows])
    out = served_comparisons(market, wrong, rows, prior)
    assert out[0].candidate < out[0].other and out[0].high < 0
    assert out[1].candidate < out[1].other  # a deeper drawdown


def test_the_health_gate():
    """Log loss below every reference beyond doubt, ranking within 0.01 of -vol_63d, and no worse
    than the champion beyond a quarter of the tolerance."""
    wins = {"base rate": _ll(-0.05, -0.06, -0.04, other=0.50), "calibrated -vol_63d": _ll(-0.02, -0.03, -0.01)}
    ranks = Comparison("test_health_correlation", 0.30, 0.304, -0.004, -0.008, 0.0)

    def health(references, rank=ranks, vs_champion=None, days=30):
        checks, headline = health_checks(references, rank, vs_champion, tolerance=0.02)
        return decide("health", checks, days, headline=headline)

    passed = health(wins)
    assert passed.promote and passed.vs_reference.against == "the calibrated -vol_63d"  # the strongest one shown
    assert passed.vs_reference.comparison.other == 0.47
    assert [c.against for c in passed.checks] == ["the base rate", "the calibrated -vol_63d", "-vol_63d"]
    unsure = health({**wins, "calibrated heuristic": _ll(-0.01, -0.02, 0.001)})
    assert not unsure.promote and "cannot be told from the calibrated heuristic on log loss" in unsure.reason
    loses = health({**wins, "calibrated -vol_21d": _ll(0.01, 0.0, 0.02)})
    assert not loses.promote and "does not beat the calibrated -vol_21d" in loses.reason
    behind = health(wins, Comparison("test_health_correlation", 0.28, 0.30, -0.02, -0.03, -0.01))
    assert not behind.promote and "worse than -vol_63d on rank correlation" in behind.reason
    assert not health(wins, days=19).promote
    within = health(wins, vs_champion=_ll(0.002, -0.001, 0.004))
    assert within.promote and within.vs_champion.margin == pytest.approx(0.005)
    worse = health(wins, vs_champion=_ll(0.02, 0.01, 0.03))
    assert not worse.promote and "worse than the champion on log loss" in worse.reason


def test_every_check_is_recorded_in_the_manifest_and_models_show(trained_store, capsys):
    version = registry.read_latest(trained_store)[0]["version"]
    gate = registry.read_manifest(trained_store, version)["gate"]
    for kind in registry.KINDS:
        checks = gate[kind]["checks"]
        assert checks and all(
            {"against", "metric", "rule", "margin", "direction", "passed", "low", "high"} <= set(c) for c in checks
        )
        if gate[kind]["promote"]:
            assert all(c["passed"] for c in checks)
    assert [c["against"] for c in gate["health"]["checks"]][-1] == "-vol_63d"  # no champion when it was trained
    assert CHAMPION not in [c["against"] for c in gate["regime"]["checks"]]
    shown = main_here(capsys, "models", "show", version, "--store", trained_store.url)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["gate"]["health"]["checks"] == gate["health"]["checks"]
