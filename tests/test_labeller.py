"""regime_labeller: hindsight labels that find the simulator's regimes better than the rules do."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from trader_ml.schema import CONTEXT_COLUMNS
from trader_ml.training.labeller import decode, gaussian_log_density, hindsight_labels, long_runs
from trader_ml.training.labels import regime_labels


def _switches_per_year(labels: np.ndarray) -> float:
    known = labels[labels >= 0]
    return float(np.sum(known[1:] != known[:-1]) / (len(known) / 252))


def test_labels_find_the_true_regimes_better_and_switch_less_than_the_rules(synthetic_context):
    """Fixed simulator seed, five years: the statistics docs/models.md reports, on a small scale."""
    context, truth = synthetic_context
    rules, labels = regime_labels(context), hindsight_labels(context)
    known = (rules >= 0) & (labels >= 0)
    assert known.mean() > 0.95  # only the edges of the window are left unlabelled
    rules_f1 = f1_score(truth[known], rules[known], average="macro")
    labels_f1 = f1_score(truth[known], labels[known], average="macro")
    assert labels_f1 >= rules_f1 + 0.05, (labels_f1, rules_f1)
    assert _switches_per_year(labels) < 0.7 * _switches_per_year(rules)
    shares = np.bincount(labels[known], minlength=5) / known.sum()
    assert (shares > 0.02).sum() >= 4  # persistent, not collapsed into one or two regimes


def test_labels_from_spy_alone(spy_only_context, synthetic_context):
    """The bundled sample has SPY's columns only: the missing ones are left out, not fatal."""
    labels = hindsight_labels(spy_only_context)
    assert (labels >= 0).mean() > 0.95
    truth = synthetic_context[1]
    known = labels >= 0
    assert f1_score(truth[known], labels[known], average="macro") > 0.4


def test_fit_on_early_days_reads_nothing_of_the_later_days_values(synthetic_context):
    """The Gaussians come from the first rows only: later rows' values change their own labels,
    never the model that decodes them (the labels of days long before the change stay)."""
    context, _ = synthetic_context
    fit_days = 700
    before = hindsight_labels(context, fit_days)
    changed = context.copy()
    changed.loc[900:, "spy_return_1d"] = changed.loc[900:, "spy_return_1d"] * 3.0
    after = hindsight_labels(changed, fit_days)
    np.testing.assert_array_equal(before[:600], after[:600])
    assert (before[900:] != after[900:]).any()


def test_decoding_keeps_a_sticky_path_through_an_odd_day():
    """Two unit Gaussians at 0 and 2; one day at 1.4 (nearer the second): a sticky chain stays
    in the first state, a loose one visits the second for that day alone."""
    x = np.array([0.0] * 5 + [1.4] + [0.0] * 5)[:, None]
    means, covariances = np.array([[0.0], [2.0]]), np.array([[[1.0]], [[1.0]]])
    sticky = np.array([[0.95, 0.05], [0.05, 0.95]])
    loose = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert decode(x, means, covariances, sticky).tolist() == [0] * 11
    assert decode(x, means, covariances, loose).tolist() == [0] * 5 + [1] + [0] * 5


def test_the_density_is_the_multivariate_normal():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    x, means = rng.normal(size=(20, 3)), rng.normal(size=(2, 3))
    spread = rng.normal(size=(2, 3, 3))
    covariances = spread @ spread.transpose(0, 2, 1) + np.eye(3)
    expected = np.column_stack([multivariate_normal(m, c).logpdf(x) for m, c in zip(means, covariances, strict=True)])
    np.testing.assert_allclose(gaussian_log_density(x, means, covariances), expected, rtol=1e-10)


def test_long_runs_drops_short_runs():
    labels = np.array([0, 0, 0, 1, 2, 2, 2, 2, 1, 1])
    assert long_runs(labels, 3).tolist() == [0, 0, 0, -1, 2, 2, 2, 2, -1, -1]


def test_a_context_too_short_to_label_gives_no_labels():
    context = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=10), "spy_return_1d": np.zeros(10)})
    context = context.reindex(columns=list(CONTEXT_COLUMNS))
    assert (hindsight_labels(context) == -1).all()
