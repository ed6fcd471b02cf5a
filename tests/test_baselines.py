"""baselines and labels: the rules read the past only; labels are the same rules, read later."""

from __future__ import annotations

import numpy as np
import pytest

from trader_ml.baselines import (
    PANIC,
    RegimeRules,
    baseline_regime_embedding,
    baseline_regimes,
    min_baseline_days,
)
from trader_ml.schema import CONTEXT_FEATURES, REGIMES
from trader_ml.training.labels import regime_labels


def values(context):
    return context[list(CONTEXT_FEATURES)].to_numpy(dtype=float)


def test_baseline_never_looks_ahead(synthetic_context):
    rows = values(synthetic_context[0])
    full_regime, full_probs = baseline_regimes(rows)
    for t in (40, 200, 611, len(rows) - 1):
        regime, probs = baseline_regimes(rows[: t + 1])
        assert regime[t] == full_regime[t]
        np.testing.assert_array_equal(probs[t], full_probs[t])
    changed = rows.copy()
    changed[301:] = changed[301:][::-1]  # rewrite the future
    assert (baseline_regimes(changed)[0][:301] == full_regime[:301]).all()


def test_baseline_answers_once_it_has_enough_days(synthetic_context):
    regime, probs = baseline_regimes(values(synthetic_context[0]))
    first = min_baseline_days() - 1
    assert (regime[:first] == -1).all() and (regime[first:] >= 0).all()
    np.testing.assert_allclose(probs[first:].sum(axis=1), 1.0)
    assert (probs[first:].argmax(axis=1) == regime[first:]).all()


def test_labels_are_the_rules_read_horizon_days_later(synthetic_context):
    context = synthetic_context[0]
    regime, _ = baseline_regimes(values(context))
    labels = regime_labels(context, horizon=10)
    np.testing.assert_array_equal(labels[:-10], regime[10:])
    assert (labels[-10:] == -1).all()
    # A label looks at most `horizon` days ahead: rows after t + 10 never change it.
    t = 500
    assert (regime_labels(context.iloc[: t + 11], horizon=10)[: t + 1] == labels[: t + 1]).all()


def test_labels_track_the_hidden_regimes(synthetic_context):
    context, truth = synthetic_context
    labels = regime_labels(context)
    known = labels >= 0
    assert (labels[known] == truth[known]).mean() > 0.55  # five classes: chance is about 0.2
    assert set(labels[known]) == set(range(len(REGIMES)))


def test_rules_without_stress_signals_use_spy_alone(spy_only_context):
    regime, _ = baseline_regimes(values(spy_only_context))
    assert set(regime[regime >= 0]) <= set(range(len(REGIMES)))
    assert len(set(regime[regime >= 0])) >= 4


def test_a_crash_is_a_panic_at_once():
    rows = np.full((80, len(CONTEXT_FEATURES)), np.nan)
    rng = np.random.default_rng(0)
    rows[:, 0] = rng.normal(0.0005, 0.005, 80)  # calm
    rows[:, 1], rows[:, 2] = 0.01, 0.08
    rows[-10:, 0] = rng.normal(-0.02, 0.05, 10)  # two weeks of 50%+ volatility
    regime, probs = baseline_regimes(rows)
    assert regime[-1] == PANIC
    assert probs[-1, PANIC] >= 0.5


def test_embedding_is_eight_bounded_numbers():
    row = np.array([0.01, -0.05, 0.2, np.nan, 0.0, 0.5, -0.1, -2.0])
    embedding = baseline_regime_embedding(row)
    assert embedding.shape == (8,) and np.all(np.abs(embedding) < 1) and embedding[3] == 0.0


@pytest.mark.parametrize("horizon", [0, 5, 10])
def test_label_horizon_shifts_only(synthetic_context, horizon):
    """The label of day t is the rules' answer on day t + horizon; the last ``horizon`` days
    have none. At horizon 0 the labels are the rules' answers themselves."""
    from trader_ml.baselines import baseline_regimes

    context = synthetic_context[0]
    labels = regime_labels(context, horizon=horizon, rules=RegimeRules())
    rules = baseline_regimes(context[list(CONTEXT_FEATURES)].to_numpy(dtype=float), RegimeRules())[0]
    n = len(labels)
    assert n == len(context) and (labels[: n - horizon] == rules[horizon:]).all()
    assert (labels[n - horizon :] == -1).all() and (labels[: n - horizon] >= 0).mean() > 0.9
