"""models.regime, training.regime, export: fit, judge honestly, export to ONNX, serve without torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from trader_ml.data.validation import validate_context
from trader_ml.errors import TraderMLError, ValidationError
from trader_ml.models.regime import RegimeModelConfig, default_layers
from trader_ml.schema import CONTEXT_FEATURES, REGIMES
from trader_ml.serving.artifacts import ArtifactError, RegimeModel
from trader_ml.training.loop import FitConfig
from trader_ml.training.regime import RegimeTrainConfig, predict_regimes, regime_artifact, train_regime, windows

from .conftest import TODAY

QUICK = FitConfig(epochs=3, batch_size=64, patience=3)


def quick_config(model_type: str = "gru", **model) -> RegimeTrainConfig:
    layers = default_layers(model_type)
    return RegimeTrainConfig(model=RegimeModelConfig(model_type=model_type, num_layers=layers, **model), fit=QUICK)


@pytest.fixture(scope="module")
def trained(synthetic_context):
    context, truth = synthetic_context
    return train_regime(context, quick_config(), truth=truth, progress=False)


@pytest.fixture(scope="module")
def artifact(trained):
    return regime_artifact(trained)


def test_split_is_chronological_with_a_purge_gap(trained):
    split, horizon = trained.split, trained.config.label_horizon
    assert split.train.max() + horizon < split.val.min()
    assert split.val.max() + horizon < split.test.min()


def test_scaler_sees_training_days_only(trained, synthetic_context):
    context, _ = synthetic_context
    rows = context[list(CONTEXT_FEATURES)].to_numpy(np.float64)[: trained.split.train[-1] + 1]
    np.testing.assert_allclose(trained.model.inputs.mean.numpy(), rows.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(trained.model.inputs.scale.numpy(), rows.std(axis=0, ddof=1), rtol=1e-5)


def test_prediction_for_a_day_ignores_later_rows(trained, synthetic_context):
    context, _ = synthetic_context
    values = context[list(CONTEXT_FEATURES)].to_numpy(np.float32)
    days = np.arange(100, 400)
    before, _ = predict_regimes(trained.model, windows(values[:400], days, 63))
    appended = values.copy()
    appended[400:] = appended[400:] * -3.0  # a wildly different future
    after, _ = predict_regimes(trained.model, windows(appended, days, 63))
    np.testing.assert_array_equal(before, after)


def test_same_seed_same_weights(synthetic_context):
    context, _ = synthetic_context
    first = train_regime(context, quick_config(), progress=False).model.state_dict()
    again = train_regime(context, quick_config(), progress=False).model.state_dict()
    other_config = dataclasses.replace(quick_config(), fit=dataclasses.replace(QUICK, seed=1))
    other = train_regime(context, other_config, progress=False).model.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("model_type", ["gru", "transformer"])
def test_trains_on_spy_alone(spy_only_context, model_type):
    result = train_regime(spy_only_context, quick_config(model_type), progress=False)
    probs, _ = predict_regimes(result.model, result.test_inputs)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.isnan(result.test_inputs[..., 3:]).all()  # the missing columns stay missing


def test_reports_model_and_baseline_on_the_same_window(trained):
    metrics = trained.metrics
    for column in ("model", "baseline", "model_vs_truth", "baseline_vs_truth"):
        m = metrics[column]
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["f1_macro"] <= 1 and 0 <= m["ece"] <= 1
        assert m["days"] == len(trained.split.test)
        assert np.array(m["confusion_matrix"]).sum() == len(trained.split.test)
    assert sum(metrics["test_window"]["days_per_regime"].values()) == len(trained.split.test)


def test_the_served_exposure_is_judged_on_the_test_days_against_variance_targeting(trained, synthetic_context):
    """The metrics hold what serving would have earned on the test days: the risk budget set at
    each close and held over the next day (10 bp per unit changed), next to variance targeting
    at the same target."""
    from trader_ml.exposure import risk_budget, served_returns, window_vols
    from trader_ml.stats import sharpe

    served = trained.metrics["served_exposure"]
    test, prior = trained.split.test, trained.exposure_prior
    spy = synthetic_context[0]["spy_return_1d"].to_numpy(dtype=float)
    probs, _ = predict_regimes(trained.model, trained.test_inputs)
    vols = window_vols(spy)
    held = [float(risk_budget(vols[test[[i]]], probs[[i]], prior)[0]) for i in (4, 5)]
    budget, alone = served_returns(spy, probs, test, prior)
    # by hand: day 5's exposure over the next day, less the cost of moving from day 4's
    assert budget[5] == pytest.approx(held[1] * spy[test[6]] - abs(held[1] - held[0]) * 10 / 1e4)
    vt = [min(1.0, (prior["vol_target"] / vols[test[i]]) ** 2) for i in (4, 5)]
    assert alone[5] == pytest.approx(vt[1] * spy[test[6]] - abs(vt[1] - vt[0]) * 10 / 1e4)
    assert served["risk_budget"]["sharpe"] == pytest.approx(float(sharpe(budget)))
    assert served["variance_target"]["sharpe"] == pytest.approx(float(sharpe(alone)))
    vs = served["vs_variance_target"]
    assert vs["sharpe_difference"] == pytest.approx(
        served["risk_budget"]["sharpe"] - served["variance_target"]["sharpe"]
    )
    low, high = vs["sharpe_interval"]
    assert low <= vs["sharpe_difference"] <= high


def test_the_artifact_names_its_inputs_and_window(artifact):
    """Parity with PyTorch and the seed's dict are the contract test's (test_model_contract.py)."""
    _, metadata = artifact
    assert metadata["feature_order"] == list(CONTEXT_FEATURES) and metadata["lookback"] == 63


def test_rows_as_dicts_answer_like_the_window(trained, artifact):
    model = RegimeModel.from_bytes(artifact[0])
    rows = trained.test_inputs[-1]
    as_dicts = [dict(zip(CONTEXT_FEATURES, map(float, r), strict=True)) for r in rows]
    assert model.predict(as_dicts) == model.predict(rows)


def test_served_model_needs_no_torch(artifact, tmp_path):
    path = tmp_path / "regime.onnx"
    path.write_bytes(artifact[0])
    code = f"""
import sys
sys.modules["torch"] = None  # any import of torch now fails
import numpy as np
from trader_ml.serving.artifacts import RegimeModel
model = RegimeModel.from_bytes(open({str(path)!r}, "rb").read())
rows = np.zeros((63, 8)); rows[:, 2] = 0.15; rows[:, 3:] = np.nan
print(model.predict(rows)["regime_label"])
assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in REGIMES


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.zeros((10, 8)), "needs the last 63 trading days, got 10"),
        (np.zeros((63, 7)), "expected rows of 8 values"),
        (np.full((63, 8), np.inf), "infinite value"),
        (np.full((63, 8), np.nan), "SPY columns"),
        ([{"spy_return_1d": "abc"}] * 63, "not a number"),
    ],
)
def test_served_model_rejects_bad_rows(artifact, rows, message):
    with pytest.raises(ArtifactError, match=message):
        RegimeModel.from_bytes(artifact[0]).predict(rows)


def test_rejects_a_history_too_short(synthetic_context):
    from trader_ml.training.regime import min_training_days

    config = quick_config()
    with pytest.raises(TraderMLError, match="too short a history: 120 trading days") as error:
        train_regime(synthetic_context[0].iloc[:120], config, progress=False)
    # the days the message asks for are the days the length check counts (the purge gaps included)
    assert f"(about {min_training_days(config)} trading days)" in str(error.value)


def test_rejects_a_single_regime(synthetic_context):
    context = synthetic_context[0].iloc[:400].copy()
    context["spy_return_1d"] = 0.0005  # a dead-calm market: every label is calm_uptrend
    context["spy_return_21d"], context["spy_vol_21d"] = 0.01, 0.01
    context[["credit_spread_proxy", "vixy_return_21d", "risk_off_proxy", "gdelt_avg_tone"]] = 0.0
    with pytest.raises(TraderMLError, match=r"single regime \(calm_uptrend\)"):
        train_regime(context, quick_config(), progress=False)


def test_rejects_an_all_nan_spy_column(synthetic_context):
    context = synthetic_context[0].copy()
    context["spy_vol_21d"] = np.nan
    with pytest.raises(ValidationError, match="column spy_vol_21d is entirely NaN"):
        validate_context(context, "context.parquet", TODAY)


def test_not_an_onnx_file():
    with pytest.raises(ArtifactError, match="not a loadable ONNX model"):
        RegimeModel.from_bytes(b"garbage")


def test_a_column_unseen_in_training_is_read_as_missing_and_said(spy_only_context, synthetic_context, caplog):
    result = train_regime(spy_only_context, quick_config("gru"), progress=False)
    data, metadata = regime_artifact(result)
    assert metadata["unseen_columns"] == list(CONTEXT_FEATURES[3:])
    served = RegimeModel.from_bytes(data)
    full = synthetic_context[0][list(CONTEXT_FEATURES)].to_numpy(dtype=np.float64)  # every column present
    window = full[-63:]
    blanked = window.copy()
    blanked[:, 3:] = np.nan
    np.testing.assert_allclose(
        served.predict_proba(window[None]).probs, served.predict_proba(blanked[None]).probs, atol=1e-6
    )
    with caplog.at_level("WARNING", logger="trader_ml.serving"):
        answer = served.predict(window)
    assert answer["ignored_columns"] == list(CONTEXT_FEATURES[3:])
    assert "missing throughout its training data" in caplog.text
    assert "ignored_columns" not in served.predict(blanked)


def test_the_temperature_is_chosen_on_validation_and_changes_no_regime(trained, synthetic_context):
    from trader_ml.training.regime import TEMPERATURES

    model = trained.model
    chosen = float(model.head.temperature)
    assert any(np.isclose(chosen, t) for t in TEMPERATURES)
    x = trained.test_inputs
    calibrated, _ = predict_regimes(model, x)
    try:
        model.head.temperature.fill_(1.0)
        raw, _ = predict_regimes(model, x)
    finally:
        model.head.temperature.fill_(chosen)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), raw.argmax(axis=1))
    if not np.isclose(chosen, 1.0):
        assert not np.allclose(calibrated, raw)


def test_the_saved_config_is_the_one_the_model_was_built_with(trained, artifact):
    _, metadata = artifact
    stay = trained.config.model.stay_probability
    assert stay != RegimeModelConfig().stay_probability  # the labels' own persistence, not the default
    assert metadata["model_config"]["stay_probability"] == stay
    assert metadata["stay_probability"] == pytest.approx(stay, abs=1e-6)


def test_switches_per_year_counts_each_answers_own_changes():
    """A default sample run showed the model and its baseline both at 13.489 switches a year:
    recounted from their predictions on that test window, each changes its answer 66 times in
    1,233 days while they disagree on 43% of the days, so the tie is a coincidence. Each row
    counts its own answers, as here."""
    from trader_ml.training.metrics import regime_metrics

    truth = np.array([0, 0, 1, 1, 2, 2, 0, 0])
    steady = np.eye(5)[[0, 0, 1, 1, 2, 2, 0, 0]]  # 3 changes
    jumpy = np.eye(5)[[0, 1, 0, 1, 0, 1, 0, 1]]  # 7 changes
    assert regime_metrics(truth, steady)["switches_per_year"] == pytest.approx(3 / (8 / 252))
    assert regime_metrics(truth, jumpy)["switches_per_year"] == pytest.approx(7 / (8 / 252))


def test_an_early_stop_leaves_the_progress_bar_where_training_ended(monkeypatch):
    import tqdm.auto

    from trader_ml.training.loop import fit

    bars = []

    class Recorder(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": False, "file": open("/dev/null", "w")})  # noqa: SIM115
            bars.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    model = torch.nn.Linear(2, 1)
    x = np.zeros((16, 2), np.float32)

    def loss(m, batch):
        return (m(batch[0]) ** 2).mean() * 0 + 1.0 + 0 * m.weight.sum()  # never improves: stops after patience

    result = fit(model, loss, (x,), (x,), FitConfig(epochs=50, patience=3, batch_size=8), progress=True, desc="t")
    assert result.stopped_early and bars[0].total == bars[0].n == len(result.history) < 50
