"""health_inputs: the health model's inputs, each volatility read against its day's universe."""

from __future__ import annotations

import numpy as np
import pytest

from trader_ml.health_inputs import MODEL_INPUTS, RAW_COLUMNS, RELATIVE_COLUMNS, model_inputs, raw_matrix
from trader_ml.schema import ASSET_FEATURES, LONG_VOL_FEATURES


def _rows(vols: dict[str, list[float]]) -> np.ndarray:
    n = len(next(iter(vols.values())))
    base = {name: np.full(n, 0.01) for name in ASSET_FEATURES}
    return raw_matrix({**base, **{k: np.asarray(v, dtype=float) for k, v in vols.items()}}, n)


def test_each_log_volatility_is_read_against_its_own_days_mean():
    raw = _rows({"vol_21d": [0.1, 0.4, 0.2, 0.2], "vol_63d": [0.2, 0.2, 0.1, 0.4]})
    x = model_inputs(raw, np.array([7, 7, 9, 9]))
    assert x.shape == (4, len(MODEL_INPUTS))
    np.testing.assert_array_equal(x[:, : len(RAW_COLUMNS)], raw)  # the raw columns pass unchanged
    rel_21 = x[:, MODEL_INPUTS.index("day_relative_log_vol_21d")]
    assert rel_21 == pytest.approx([np.log(0.1 / 0.4) / 2, np.log(0.4 / 0.1) / 2, 0.0, 0.0])
    rel_63 = x[:, MODEL_INPUTS.index("day_relative_log_vol_63d")]
    assert rel_63 == pytest.approx([0.0, 0.0, np.log(0.1 / 0.4) / 2, np.log(0.4 / 0.1) / 2])
    # A day's answer does not depend on the other days given with it.
    alone = model_inputs(raw[2:], None)
    np.testing.assert_allclose(alone, x[2:])


def test_a_missing_long_column_reads_as_the_next_shorter_volatility_and_stays_missing_raw():
    raw = _rows({"vol_21d": [0.1, 0.3], "vol_63d": [0.2, 0.3], "vol_126d": [0.25, np.nan]})
    x = model_inputs(raw)
    assert np.isnan(x[:, MODEL_INPUTS.index("vol_252d")]).all()  # the raw column: missing, for the mask
    assert np.isfinite(x[:, len(RAW_COLUMNS) :]).all()  # the relative ones: always defined
    # vol_126d of the second row stands in as its vol_63d (0.3); vol_252d as vol_126d; the EWM as vol_63d.
    expected_126 = np.log([0.25, 0.3]) - np.log([0.25, 0.3]).mean()
    assert x[:, MODEL_INPUTS.index("day_relative_log_vol_126d")] == pytest.approx(expected_126)
    assert x[:, MODEL_INPUTS.index("day_relative_log_vol_252d")] == pytest.approx(expected_126)
    expected_ewm = np.log([0.2, 0.3]) - np.log([0.2, 0.3]).mean()
    assert x[:, MODEL_INPUTS.index("day_relative_log_vol_ewm_42d")] == pytest.approx(expected_ewm)
    assert len(RELATIVE_COLUMNS) == 2 + len(LONG_VOL_FEATURES)


def test_a_table_with_only_the_ten_features_trains_and_serves(synthetic_features):
    """The guide's ten columns are the contract: without the long-memory columns the model
    trains (reading them as missing) and the served model answers the ten alone."""
    from trader_ml.serving.artifacts import HealthModel
    from trader_ml.training.health import health_artifact, health_train_config, train_health

    features, _ = synthetic_features
    ten = features[["date", "symbol", *ASSET_FEATURES]]
    result = train_health(ten, health_train_config(epochs=2), progress=False)
    assert np.isnan(result.test_rows[:, len(ASSET_FEATURES) :]).all()
    served = HealthModel.from_bytes(health_artifact(result)[0])
    day = ten[ten["date"] == ten["date"].iloc[-1]]
    rows = [{"symbol": r.symbol, **{c: getattr(r, c) for c in ASSET_FEATURES}} for r in day.itertuples()]
    answers, skipped, _ = served.predict(rows)
    assert skipped == [] and len(answers) == len(rows)
    assert all(0.0 < a["health_score"] < 1.0 for a in answers.values())
