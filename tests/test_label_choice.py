"""label_choice: the labeller chosen on a refit's own training years, by what its labels would earn late."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pytest

from trader_ml.data.features import context_rows
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.exposure import delayed_exposure_returns
from trader_ml.training.label_choice import candidates, choose_labeller, name, validation_years
from trader_ml.training.labeller import DEFAULT_LABELLER
from trader_ml.training.regime import prepare_regime, regime_train_config


@pytest.fixture(scope="module")
def long_context():
    """Nine simulated years (2000-2008) of SPY's columns: enough for a choice on the training part."""
    raw = SyntheticSource(SyntheticParams(seed=5, n_symbols=1)).fetch(dt.date(2000, 1, 1), dt.date(2008, 12, 31))
    return context_rows(raw)


def test_delayed_exposure_is_the_label_of_lag_days_before_by_hand():
    """Regimes calm, bear, choppy, calm; lag 1: unknown (fully in), calm, bear, choppy held;
    10 bp per unit the exposure changes, the first day's entry included."""
    regimes = np.array([0, 2, 3, 0])
    market = np.array([0.01, -0.02, 0.03, 0.01])
    got = delayed_exposure_returns(regimes, market, np.arange(4), lag=1)
    held = np.array([1.0, 1.0, 0.0, 0.5])
    turnover = np.array([1.0, 0.0, 1.0, 0.5])
    np.testing.assert_allclose(got, held * market - turnover * 10 / 1e4)


def test_candidates_start_with_the_default_and_never_reach_past_the_horizon():
    judged = candidates(DEFAULT_LABELLER, horizon=10)
    assert judged[0] == DEFAULT_LABELLER and len(set(judged)) == len(judged) == 6
    short = candidates(replace(DEFAULT_LABELLER, reach=5), horizon=5)
    assert {c.reach for c in short} == {3, 5} and len(short) == 4


def test_validation_years_are_the_last_whole_ones_after_three_years_of_fitting(long_context):
    dates = long_context["date"]
    assert validation_years(dates) == [2004, 2005, 2006, 2007, 2008]
    assert validation_years(dates[dates.dt.year <= 2005]) == [2003, 2004, 2005]
    assert validation_years(dates[dates.dt.year <= 2003]) == [2003]


def test_a_short_history_keeps_the_default_and_says_why(long_context):
    short = long_context[long_context["date"].dt.year <= 2003].reset_index(drop=True)
    choice = choose_labeller(short, horizon=10)
    assert choice.labeller == DEFAULT_LABELLER and choice.scores == {} and choice.validation is None
    assert "default" in choice.reason


def test_the_choice_is_the_best_validated_candidate(long_context):
    choice = choose_labeller(long_context, horizon=10)
    assert set(choice.scores) == {name(c) for c in candidates(DEFAULT_LABELLER, 10)}
    assert np.isfinite(list(choice.scores.values())).all()
    assert choice.scores[name(choice.labeller)] == max(choice.scores.values())
    assert choice.validation == ("2004-01-01", str(long_context["date"].iloc[-1].date()))
    assert choice.summary()["reach"] == choice.labeller.reach


def test_prepare_regime_chooses_from_training_days_alone(long_context):
    """Rows from the end of the training split on are tripled: the choice is unchanged; the same
    change inside the training years changes what the candidates score (the check can fail)."""
    config = replace(regime_train_config("gru"), choose_labels=True)
    prep = prepare_regime(long_context, config)
    train_days = prep.split.train[-1] + 1
    assert prep.label_choice.validation is not None
    assert prep.label_choice.validation[1] <= str(long_context["date"].iloc[train_days - 1].date())
    assert prep.config.labeller == prep.label_choice.labeller

    def tripled(start: int):
        changed = long_context.copy()
        changed.loc[start:, "spy_return_1d"] *= 3.0
        return prepare_regime(changed, config).label_choice

    assert tripled(train_days).summary() == prep.label_choice.summary()
    assert tripled(train_days - 300).scores != prep.label_choice.scores


def test_the_default_run_keeps_the_default_labeller_and_says_so(long_context):
    prep = prepare_regime(long_context, regime_train_config("gru"))
    assert prep.config.labeller == DEFAULT_LABELLER and prep.label_choice.scores == {}
    assert "no choice" in prep.label_choice.reason
