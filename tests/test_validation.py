"""validation: every schema problem is one clear line naming the file, column and first bad row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trader_ml.data.validation import validate_context, validate_features
from trader_ml.errors import ValidationError
from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES

from .conftest import TODAY


def context_frame(n: int = 5) -> pd.DataFrame:
    days = pd.bdate_range("2024-01-01", periods=n)
    frame = pd.DataFrame({"date": days})
    for i, col in enumerate(CONTEXT_FEATURES):
        frame[col] = np.linspace(0.01, 0.05, n) * (i + 1)
    frame["gdelt_avg_tone"] = np.nan  # an unavailable source is allowed
    return frame


def features_frame() -> pd.DataFrame:
    days = pd.bdate_range("2024-01-01", periods=3)
    frame = pd.DataFrame({"date": np.repeat(days, 2), "symbol": ["AAA", "BBB"] * 3})
    for i, col in enumerate(ASSET_FEATURES):
        frame[col] = (np.arange(6) + i) * 0.01 * (-1 if col.startswith("drawdown") else 1)  # plausible values
    return frame


def test_good_frames_pass_and_are_normalised():
    context = validate_context(context_frame(), "ctx.parquet", TODAY)
    assert context["date"].dtype == "datetime64[ns]"
    features = validate_features(features_frame(), "feat.parquet", TODAY)
    assert list(features["symbol"]) == ["AAA", "BBB"] * 3


def _mutate(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    f = frame.copy()
    if how == "missing":
        return f.drop(columns=["spy_vol_21d" if "spy_vol_21d" in f else "vol_21d"])
    if how == "extra":
        f["surprise"] = 1.0
    elif how == "empty":
        f = f.iloc[:0]
    elif how == "dtype":
        col = f.columns[2]
        f[col] = f[col].astype(str)
    elif how == "date_dtype":
        f["date"] = f["date"].dt.strftime("%Y-%m-%d")
    elif how == "inf":
        f.loc[3, f.columns[3]] = np.inf
    elif how == "nan_key":
        f["date"] = f["date"].astype(object)
        f.loc[3, "date"] = pd.NaT
        f["date"] = pd.to_datetime(f["date"])
    elif how == "duplicate":
        f.loc[3, ["date"] + (["symbol"] if "symbol" in f else [])] = f.loc[
            2, ["date"] + (["symbol"] if "symbol" in f else [])
        ].to_numpy()
    elif how == "unsorted":
        f = f.iloc[[0, 1, 3, 2, 4, 5][: len(f)]].reset_index(drop=True)
    elif how == "future":
        f.loc[len(f) - 1, "date"] = pd.Timestamp("2030-01-01")
    return f


CASES = [
    ("missing", "missing column"),
    ("extra", r"unexpected column\(s\) surprise"),
    ("empty", "no rows"),
    ("dtype", "expected float"),
    ("date_dtype", "column date has dtype"),
    ("inf", "infinite value"),
    ("nan_key", "column date: missing value"),
    ("duplicate", "duplicate"),
    ("unsorted", "order|sorted"),
    ("future", "in the future"),
]


@pytest.mark.parametrize(("how", "message"), CASES)
def test_context_rejects(how, message):
    with pytest.raises(ValidationError, match=message) as err:
        validate_context(_mutate(context_frame(6), how), "ctx.parquet", TODAY)
    assert str(err.value).startswith("ctx.parquet")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("how", "message"), CASES)
def test_features_rejects(how, message):
    with pytest.raises(ValidationError, match=message) as err:
        validate_features(_mutate(features_frame(), how), "feat.parquet", TODAY)
    assert str(err.value).startswith("feat.parquet")
    assert "\n" not in str(err.value)


def test_message_names_first_bad_row_and_its_keys():
    frame = features_frame()
    frame.loc[4, "vol_63d"] = np.nan
    frame.loc[5, "vol_63d"] = np.nan
    with pytest.raises(ValidationError) as err:
        validate_features(frame, "feat.parquet", TODAY)
    assert str(err.value) == "feat.parquet, row 4 (date 2024-01-03, symbol AAA): column vol_63d: NaN"


def test_context_allows_unavailable_columns_but_not_missing_spy():
    frame = context_frame()
    frame["yield_slope"] = np.nan
    validate_context(frame, "ctx", TODAY)
    frame.loc[1, "spy_return_21d"] = np.nan
    with pytest.raises(ValidationError, match="row 1 .*column spy_return_21d: NaN"):
        validate_context(frame, "ctx", TODAY)


def test_missing_symbol_is_rejected():
    frame = features_frame()
    frame["symbol"] = frame["symbol"].astype(object)
    frame.loc[2, "symbol"] = None
    with pytest.raises(ValidationError, match="row 2 .*column symbol: missing value"):
        validate_features(frame, "feat", TODAY)


@pytest.mark.parametrize("symbol", ["x\x00y", "a/b", "../../etc", "AB\u202eC", "", "X" * 40])
def test_symbols_must_be_tickers(symbol):
    from trader_ml.data.validation import validate_features

    frame = _features_frame(symbol)
    with pytest.raises(ValidationError, match="column symbol"):
        validate_features(frame, "f.parquet", TODAY)


@pytest.mark.parametrize(
    ("column", "value"), [("return_1d", 1e30), ("vol_21d", -0.1), ("drawdown_63d", 0.5), ("return_21d", 250.0 * 100)]
)
def test_implausible_values_name_the_column_and_row(column, value):
    from trader_ml.data.validation import validate_features

    frame = _features_frame("AAPL")
    frame.loc[1, column] = value
    with pytest.raises(ValidationError, match=rf"f.parquet, row 1 .*column {column}: outside"):
        validate_features(frame, "f.parquet", TODAY)


def test_context_in_basis_points_is_refused():
    from trader_ml.data.validation import validate_context

    frame = pd.DataFrame(
        {
            "date": pd.bdate_range("2024-01-01", periods=3),
            "spy_return_1d": [12.0, -30.0, 15.0],  # basis points stored as if fractions
            "spy_return_21d": [0.01] * 3,
            "spy_vol_21d": [0.15] * 3,
            **{
                c: [np.nan] * 3
                for c in ("yield_slope", "credit_spread_proxy", "vixy_return_21d", "risk_off_proxy", "gdelt_avg_tone")
            },
        }
    )
    with pytest.raises(ValidationError, match="row 0 .*column spy_return_1d: outside"):
        validate_context(frame, "c.parquet", TODAY)


def _features_frame(symbol: str) -> pd.DataFrame:
    from trader_ml.schema import ASSET_FEATURES

    frame = pd.DataFrame({"date": pd.bdate_range("2024-01-01", periods=3), "symbol": [symbol] * 3})
    for column in ASSET_FEATURES:
        frame[column] = -0.01 if column.startswith("drawdown") else 0.2 if column.startswith("vol") else 0.01
    frame["symbol"] = frame["symbol"].astype("string")
    return frame


def test_a_date_before_1900_is_one_line_not_a_timestamp_overflow(tmp_path):
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from trader_ml.data.partitions import read_file

    columns = {c: pa.array([0.01]) for c in ("spy_return_1d", "spy_return_21d", "spy_vol_21d")}
    rest = {
        c: pa.array([None], pa.float64())
        for c in ("yield_slope", "credit_spread_proxy", "vixy_return_21d", "risk_off_proxy", "gdelt_avg_tone")
    }
    path = tmp_path / "old.parquet"
    pq.write_table(pa.table({"date": pa.array([dt.date(1000, 1, 1)], pa.date32()), **columns, **rest}), path)
    with pytest.raises(
        ValidationError, match=r"old.parquet, row 0 \(date 1000-01-01\): column date: before 1900-01-01"
    ):
        read_file(str(path), "context", TODAY)


def test_a_repeated_column_is_one_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trader_ml.data.partitions import read_file

    path = tmp_path / "twice.parquet"
    pq.write_table(
        pa.Table.from_arrays([pa.array([0.1]), pa.array([0.2])], names=["spy_return_1d", "spy_return_1d"]), path
    )
    with pytest.raises(ValidationError) as error:
        read_file(str(path), "context", TODAY)
    assert str(error.value) == f"{path}: column(s) spy_return_1d appear more than once"
