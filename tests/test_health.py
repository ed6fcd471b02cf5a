"""models.health, training.health, labels (health), baselines (health): targets, fit, export, serve."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from trader_ml.baselines import DEFAULT_HEALTH_RULES, baseline_health, behaviors, vol_buckets
from trader_ml.errors import TraderMLError
from trader_ml.models.health import HealthModelConfig
from trader_ml.schema import ASSET_FEATURES
from trader_ml.serving.artifacts import HealthModel, asset_rows
from trader_ml.training.health import HealthTrainConfig, health_artifact, train_health
from trader_ml.training.labels import forward_drawdown, health_targets
from trader_ml.training.loop import FitConfig

QUICK = FitConfig(epochs=3, batch_size=256, patience=3)


def quick(model_type: str = "autoencoder", seed: int = 0) -> HealthTrainConfig:
    return HealthTrainConfig(model=HealthModelConfig(model_type=model_type), fit=dataclasses.replace(QUICK, seed=seed))


@pytest.fixture(scope="module")
def trained(synthetic_features):
    features, truth = synthetic_features
    return train_health(features, quick(), truth=truth, progress=False)


@pytest.fixture(scope="module")
def artifact(trained):
    return health_artifact(trained)


def test_forward_drawdown_by_hand():
    days = pd.bdate_range("2024-01-01", periods=30)
    returns = {"UP": 0.01, "DOWN": -0.01, "DIP": 0.0}
    rows = [(d, s, r) for d in days for s, r in sorted(returns.items())]
    frame = pd.DataFrame(rows, columns=["date", "symbol", "return_1d"])
    frame.loc[(frame["symbol"] == "DIP") & (frame["date"] == days[5]), "return_1d"] = -0.10
    drawdown = pd.Series(forward_drawdown(frame), index=pd.MultiIndex.from_frame(frame[["date", "symbol"]]))
    assert drawdown[(days[0], "UP")] == 0.0  # never below today's close
    assert drawdown[(days[0], "DOWN")] == pytest.approx(0.99**21 - 1)
    assert drawdown[(days[0], "DIP")] == pytest.approx(-0.10)  # day 5 is within the next 21
    assert drawdown[(days[5], "DIP")] == 0.0  # the dip is today's, not ahead
    assert np.isnan(drawdown[(days[9], "UP")])  # fewer than 21 days left


def test_targets_mark_the_worst_fifth(synthetic_features):
    features, _ = synthetic_features
    target, drawdown = health_targets(features)
    known = ~np.isnan(target)
    assert 0.74 <= np.mean(target[known]) <= 0.84  # 12 names: a fifth is 2.4, so 2 or 3 a day
    worst = drawdown[known][target[known] == 0]
    best = drawdown[known][target[known] == 1]
    assert worst.mean() < best.mean()
    last_days = features["date"] > features["date"].unique()[-22]
    assert np.isnan(target[last_days.to_numpy()]).all()


def test_same_seed_same_weights(synthetic_features):
    features, _ = synthetic_features
    first = train_health(features, quick(), progress=False).model.state_dict()
    again = train_health(features, quick(), progress=False).model.state_dict()
    other = train_health(features, quick(seed=1), progress=False).model.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_split_by_date_with_a_21_day_purge(trained):
    split = trained.split
    assert split.train.max() + 21 < split.val.min() and split.val.max() + 21 < split.test.min()


def test_bucket_boundaries_come_from_training_days_only(synthetic_features, trained):
    features, _ = synthetic_features
    days = np.sort(features["date"].unique())
    train_days = days[trained.split.train]
    in_train = features["date"].isin(train_days).to_numpy() & ~np.isnan(health_targets(features)[0])
    expected = np.quantile(features.loc[in_train, "vol_21d"], [1 / 3, 2 / 3])
    np.testing.assert_allclose(trained.vol_boundaries, expected, rtol=1e-6)
    wild = features.copy()
    later = ~wild["date"].isin(train_days)
    wild.loc[later, "vol_21d"] *= 10  # a wildly different future
    again = train_health(wild, quick(), progress=False)
    np.testing.assert_allclose(again.vol_boundaries, trained.vol_boundaries)


def test_the_artifact_keeps_the_training_days_bucket_boundaries(trained, artifact):
    """Parity with PyTorch and the seed's dict are the contract test's (test_model_contract.py)."""
    assert artifact[1]["vol_boundaries"] == list(trained.vol_boundaries)


def test_rows_with_nan_features_are_skipped_and_counted(artifact):
    good = dict(zip(ASSET_FEATURES, [0.0, 0.01, 0.02, 0.05, 0.2, 0.2, -0.02, -0.05, 0.0, 0.01], strict=True))
    rows = [
        {**good, "symbol": "OK"},
        {**good, "symbol": "NEW", "vol_63d": float("nan")},
        {**good, "symbol": "GAP", "return_5d": None},
    ]
    results, skipped, refused = HealthModel.from_bytes(artifact[0]).predict(rows)
    assert list(results) == ["OK"] and skipped == ["NEW", "GAP"] and refused == {}
    assert asset_rows(rows)[2] == ["NEW", "GAP"] and asset_rows(rows)[3] == {}


def test_too_little_history_is_a_clear_error(synthetic_features):
    features, _ = synthetic_features
    short = features[features["date"] < features["date"].unique()[110]]
    with pytest.raises(
        TraderMLError, match="too short a history: .* trading days with a known 21-day outcome"
    ) as error:
        train_health(short, quick(), progress=False)
    from trader_ml.training.health import min_training_days

    assert f"(about {min_training_days(quick())} trading days" in str(error.value)  # what the check counts


def test_heuristic_prefers_calm_stocks_and_maps_to_unit_interval():
    base = np.array([[0.0, 0.0, 0.0, 0.0, 0.30, 0.30, 0.0, 0.0, 0.0, 0.0]])  # 30% vol, no trend
    calm, wild = base.copy(), base.copy()
    calm[0, 4:6] = 0.12
    wild[0, 4:6] = 0.70
    scores = baseline_health(np.vstack([calm, base, wild]))
    assert scores[0] > scores[1] > scores[2] and ((scores > 0) & (scores < 1)).all()
    assert scores[1] == pytest.approx(0.8, abs=0.05)


def test_buckets_and_behaviors():
    assert list(vol_buckets(np.array([0.1, 0.25, 0.5]), DEFAULT_HEALTH_RULES.vol_boundaries)) == ["low", "med", "high"]
    rows = np.zeros((3, 10))
    rows[:, 4] = 0.2
    rows[0, [1, 2, 3]] = [0.02, 0.05, 0.12]  # up on every horizon, 12% in 63 days
    rows[1, [1, 2, 3]] = [-0.06, 0.01, 0.10]  # a sharp week against a rising quarter
    rows[2, [1, 2, 3]] = [0.001, -0.01, 0.01]
    assert list(behaviors(rows)) == ["momentum", "mean_reversion", "mixed"]


def _panel(days: int = 80, symbols: tuple[str, ...] = ("A", "B", "C", "D", "E"), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-01", periods=days)
    rows = [(d, s, rng.normal(0, 0.01)) for d in dates for s in symbols]
    return pd.DataFrame(rows, columns=["date", "symbol", "return_1d"])


def _known_per_symbol(frame: pd.DataFrame) -> pd.Series:
    target, _ = health_targets(frame)
    return pd.Series(~np.isnan(target), index=frame.index).groupby(frame["symbol"].to_numpy()).sum()


def test_a_late_listing_keeps_its_targets():
    full = _panel(symbols=("A", "B", "C", "D", "E", "LATE"))
    dates = full["date"].unique()
    frame = full[(full["symbol"] != "LATE") | (full["date"] >= dates[10])].reset_index(drop=True)
    known = _known_per_symbol(frame)
    assert known["LATE"] == 80 - 10 - 21 and known["A"] == 80 - 21  # every day with 21 days after it


def test_a_single_missing_day_removes_only_the_windows_that_touch_it():
    frame = _panel(symbols=("A", "B", "C", "D", "E", "GAP"))
    dates = frame["date"].unique()
    frame = frame[~((frame["symbol"] == "GAP") & (frame["date"] == dates[40]))].reset_index(drop=True)
    target, drawdown = health_targets(frame)
    gap = (frame["symbol"] == "GAP").to_numpy()
    gap_dates = frame["date"].to_numpy()[gap]
    unknown = set(gap_dates[np.isnan(target[gap])])
    touching = set(dates[19:40]) | set(dates[59:])  # windows through day 40, and the last 21 days
    assert unknown == touching
    assert np.isfinite(drawdown[gap][gap_dates == dates[41]]).all()  # after the gap: known again


def test_a_delisting_keeps_the_targets_before_it():
    frame = _panel(symbols=("A", "B", "C", "D", "E", "GONE"))
    dates = frame["date"].unique()
    frame = frame[(frame["symbol"] != "GONE") | (frame["date"] <= dates[49])].reset_index(drop=True)
    assert _known_per_symbol(frame)["GONE"] == 50 - 21


def test_the_worst_fifth_of_five_names_is_one_name_even_with_ties():
    frame = _panel(days=60)
    frame.loc[frame["symbol"].isin(["A", "B", "C"]), "return_1d"] = 0.01  # never below today: drawdown 0
    target, drawdown = health_targets(frame)
    known = ~np.isnan(target)
    per_day = pd.Series(1.0 - target[known]).groupby(frame["date"].to_numpy()[known]).sum()
    assert (per_day == 1.0).all()  # exactly one name of five every day: the event rate is 0.20
    assert np.mean(1.0 - target[known]) == pytest.approx(0.2)
    assert (drawdown[known & frame["symbol"].isin(["A", "B", "C"]).to_numpy()] == 0.0).all()


def test_a_losing_or_wrong_way_round_model_is_said_out_loud(trained):
    from trader_ml.training.health import health_warnings
    from trader_ml.training.health_references import REFERENCES

    assert isinstance(trained.metrics["warnings"], list)
    references = {name: {"log_loss": 0.47} for name in REFERENCES}
    metrics = {
        "model": {"test_health_correlation": 0.20, "log_loss": 0.49},
        "-vol_63d": {"test_health_correlation": 0.27},
        **references,
        "base rate": {"log_loss": 0.50},
    }
    said = health_warnings(metrics, calibration_slope=-0.105)
    assert len(said) == 5  # above three calibrated references, ranks worse, wrong-way round
    assert sum("log loss is above" in line for line in said) == 3 and "0.4900 vs 0.4700" in said[0]
    assert "ranks worse than -vol_63d" in said[3] and "0.200 vs 0.270" in said[3]
    assert "wrong-way round" in said[4] and "-0.105" in said[4]
    fine = {**metrics, "model": {"test_health_correlation": 0.265, "log_loss": 0.46}}
    assert health_warnings(fine, calibration_slope=0.9) == []


def test_the_score_starts_from_a_volatility_prior_and_keeps_only_a_correction_that_helps(synthetic_features, trained):
    from trader_ml.models.health import RELATIVE_INDEX, WIDE_BLEND, blend_mix
    from trader_ml.training.health import CORRECTION_WEIGHTS, predict_health
    from trader_ml.training.metrics import per_date_rank_correlation

    features, _ = synthetic_features
    prior = trained.metrics["prior"]
    assert prior["blend"] == WIDE_BLEND  # 12 names pool nothing
    assert prior["weights"][0] < 0  # more volatile than its day, less likely to stay healthy
    chosen, losses = prior["correction_weight"], prior["val_log_loss_by_correction_weight"]
    correlations = prior["val_correlation_by_correction_weight"]
    assert chosen in CORRECTION_WEIGHTS
    # A kept correction lowered validation log loss and ranked validation days no worse than the prior.
    assert losses[str(chosen)] <= losses["0.0"] and correlations[str(chosen)] >= correlations["0.0"]
    # With no correction the score ranks each day exactly as the chosen blend does.
    model = trained.model
    x = trained.test_inputs
    kept = float(model.correction_weight)
    try:
        model.correction_weight.fill_(0.0)
        probability, _, _ = predict_health(model, x)
    finally:
        model.correction_weight.fill_(kept)
    dates = features["date"].to_numpy()[trained.test_index]
    prior_score = x[:, list(RELATIVE_INDEX)] @ blend_mix(WIDE_BLEND).numpy() * float(model.prior[0])
    assert per_date_rank_correlation(dates, probability, prior_score) == pytest.approx(1.0, abs=1e-6)


def test_a_small_universe_trains_with_the_bundled_sample_pooled_in(synthetic_features, trained):
    """Five symbols are too few to learn from alone: the sample's rows join the training rows
    (never validation or test), the metrics say so, and a large enough universe pools nothing."""
    from trader_ml.models.health import SMALL_UNIVERSE_BLEND, blend_mix

    features, _ = synthetic_features
    five = features[features["symbol"].isin(sorted(features["symbol"].unique())[:5])].reset_index(drop=True)
    small = train_health(five, quick(), progress=False)
    rows = small.metrics["training_rows"]
    assert rows["pooled"] > 0 and rows["pooled_from"] is not None
    assert rows["own"] < rows["pooled"]
    assert small.metrics["test_window"]["rows"] == 5 * small.metrics["test_window"]["days"]  # only its own rows
    # Five names rank a year apart under any two blends: the prior keeps close to the quarter's.
    assert small.metrics["prior"]["blend"] == SMALL_UNIVERSE_BLEND
    assert torch.equal(small.model.prior_mix, blend_mix(SMALL_UNIVERSE_BLEND))
    # Its calibration is shrunk by its worst own year; the served pair is the shrunk one.
    from trader_ml.training.health_shrink import SHRINKS

    prior = small.metrics["prior"]
    shrink, worst = prior["calibration_shrink"], prior["worst_year_gain_by_shrink"]
    assert shrink in SHRINKS and sorted(worst) == [str(s) for s in SHRINKS]
    assert worst[str(shrink)] == max(worst.values())
    assert small.model.calibration[0] != 0  # never shrunk to a constant: the ranking is kept
    large = trained  # 12 symbols
    assert large.metrics["prior"]["blend"] != SMALL_UNIVERSE_BLEND
    assert large.metrics["prior"]["calibration_shrink"] == 1.0  # ten names or more: not shrunk
    assert large.metrics["training_rows"]["pooled"] == 0 and large.metrics["training_rows"]["pooled_from"] is None


def test_pooled_rows_end_before_the_first_validation_outcome():
    from trader_ml.training.pooling import pooled_rows

    first_val = pd.Timestamp("2008-06-02")
    pool, target = pooled_rows(first_val, 21)
    assert pool["date"].max() < first_val - pd.Timedelta(days=42)
    assert len(pool) == len(target) and not np.isnan(target).any()
    assert pool["symbol"].nunique() == 20
