"""Schema checks for context and features frames: each failure is one line naming where.

Every frame read from a store or a user's file, and every frame about to be written, passes
through ``validate_context`` or ``validate_features``. The message names the file (or
partition), the column and the first bad row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd

from trader_ml.errors import ValidationError
from trader_ml.schema import (
    ASSET_BOUNDS,
    ASSET_FEATURES,
    CONTEXT_BOUNDS,
    CONTEXT_COLUMNS,
    CONTEXT_FEATURES,
    FEATURE_COLUMNS,
    LONG_VOL_FEATURES,
    REQUIRED_CONTEXT_FEATURES,
    SYMBOL_PATTERN,
)

EARLIEST_DAY = np.datetime64("1900-01-01", "D")
Locate = Callable[[int], str]  # row number -> "file, row k" for messages


def _at(where: str | Locate) -> Locate:
    if callable(where):
        return where
    return lambda i: f"{where}, row {i}"


def _row_label(frame: pd.DataFrame, i: int) -> str:
    parts = []
    if "date" in frame and not pd.isna(frame["date"].iloc[i]):
        parts.append(f"date {pd.Timestamp(frame['date'].iloc[i]).date()}")
    if "symbol" in frame and not pd.isna(frame["symbol"].iloc[i]):
        symbol = str(frame["symbol"].iloc[i])
        parts.append(f"symbol {symbol if symbol.isprintable() else ascii(symbol)}")  # no control bytes in messages
    return f" ({', '.join(parts)})" if parts else ""


def _fail(frame: pd.DataFrame, where: str | Locate, mask: np.ndarray, problem: str) -> None:
    if mask.any():
        i = int(np.argmax(mask))
        raise ValidationError(f"{_at(where)(i)}{_row_label(frame, i)}: {problem}")


def _file(where: str | Locate) -> str:
    return where if isinstance(where, str) else _at(where)(0).rsplit(", row", 1)[0]


def _check_columns(
    frame: pd.DataFrame, expected: tuple[str, ...], where: str | Locate, optional: tuple[str, ...] = ()
) -> None:
    if len(frame) == 0:
        raise ValidationError(f"{_file(where)}: no rows")
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ValidationError(f"{_file(where)}: missing column(s) {', '.join(missing)}")
    extra = [str(c) for c in frame.columns if c not in expected and c not in optional]
    if extra:
        raise ValidationError(f"{_file(where)}: unexpected column(s) {', '.join(extra)}")


def _check_dates(frame: pd.DataFrame, where: str | Locate, today: dt.date | None) -> None:
    if not pd.api.types.is_datetime64_dtype(frame["date"]):
        raise ValidationError(f"{_file(where)}: column date has dtype {frame['date'].dtype}; expected a date type")
    dates = frame["date"].to_numpy()
    _fail(frame, where, pd.isna(dates), "column date: missing value")
    limit = np.datetime64(today or dt.date.today(), "D")
    _fail(frame, where, dates.astype("datetime64[D]") > limit, f"column date: in the future (after {limit})")
    # Before 1900 is no daily market history, and before 1678 does not fit pandas' timestamps.
    _fail(frame, where, dates.astype("datetime64[D]") < EARLIEST_DAY, f"column date: before {EARLIEST_DAY}")


def _check_floats(frame: pd.DataFrame, columns: tuple[str, ...], where: str | Locate, nan_ok: set[str]) -> None:
    for col in columns:
        series = frame[col]
        if not (pd.api.types.is_float_dtype(series) or pd.api.types.is_integer_dtype(series)) or (
            pd.api.types.is_bool_dtype(series)
        ):
            raise ValidationError(f"{_file(where)}: column {col} has dtype {series.dtype}; expected float")
        values = series.to_numpy(dtype=float, na_value=np.nan)
        if col not in nan_ok and np.isnan(values).all():
            raise ValidationError(f"{_file(where)}: column {col} is entirely NaN")
        _fail(frame, where, np.isinf(values), f"column {col}: infinite value")
        if col not in nan_ok:
            _fail(frame, where, np.isnan(values), f"column {col}: NaN")


def _check_plausible(frame: pd.DataFrame, where: str | Locate, bounds: dict[str, tuple[float, float]]) -> None:
    for col, (low, high) in bounds.items():
        values = frame[col].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            _fail(
                frame,
                where,
                (values < low) | (values > high),
                f"column {col}: outside {low} .. {high}, not a plausible value",
            )


def _normalised(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = frame[list(columns)].copy()
    out["date"] = out["date"].astype("datetime64[ns]")
    for col in columns:
        if col not in ("date", "symbol"):
            out[col] = out[col].astype("float64")
    return out.reset_index(drop=True)


def validate_context(frame: pd.DataFrame, where: str | Locate, today: dt.date | None = None) -> pd.DataFrame:
    """Checked copy of a context frame (date as datetime64[ns], features as float64).

    Context columns other than SPY's may be NaN: a source that lacks a series leaves it so.
    """
    _check_columns(frame, CONTEXT_COLUMNS, where)
    _check_dates(frame, where, today)
    dates = frame["date"].to_numpy()
    _fail(frame, where, pd.Series(dates).duplicated().to_numpy(), "column date: duplicate date")
    _fail(frame, where, np.r_[False, dates[1:] < dates[:-1]], "column date: not in ascending order")
    nan_ok = set(CONTEXT_FEATURES) - set(REQUIRED_CONTEXT_FEATURES)
    _check_floats(frame, CONTEXT_FEATURES, where, nan_ok)
    _check_plausible(frame, where, CONTEXT_BOUNDS)
    return _normalised(frame, CONTEXT_COLUMNS)


def validate_features(frame: pd.DataFrame, where: str | Locate, today: dt.date | None = None) -> pd.DataFrame:
    """Checked copy of a per-asset features frame: keys unique and sorted, no NaN in the ten
    features. The long-memory columns are optional and may be NaN; the copy always holds them
    (NaN where the frame has none)."""
    _check_columns(frame, FEATURE_COLUMNS, where, optional=LONG_VOL_FEATURES)
    _check_dates(frame, where, today)
    symbol = frame["symbol"]
    if not (pd.api.types.is_string_dtype(symbol) or pd.api.types.is_object_dtype(symbol)):
        raise ValidationError(f"{_file(where)}: column symbol has dtype {symbol.dtype}; expected string")
    text = symbol.astype("string")
    _fail(frame, where, (text.isna() | (text.str.strip() == "")).to_numpy(dtype=bool), "column symbol: missing value")
    # Symbols become parts of keys, file names and logs: no separators, control or bidi characters.
    _fail(
        frame,
        where,
        ~text.str.fullmatch(SYMBOL_PATTERN).fillna(False).to_numpy(dtype=bool),
        "column symbol: not a ticker (letters, digits and . - _ ^ =, at most 32 characters)",
    )
    keys = pd.DataFrame({"date": frame["date"].to_numpy(), "symbol": text.to_numpy()})
    _fail(frame, where, keys.duplicated().to_numpy(), "duplicate (date, symbol)")
    dates = keys["date"].to_numpy()
    names = keys["symbol"].to_numpy(dtype=object)
    backwards = np.r_[False, (dates[1:] < dates[:-1]) | ((dates[1:] == dates[:-1]) & (names[1:] < names[:-1]))]
    _fail(frame, where, backwards, "rows not sorted by (date, symbol)")
    _check_floats(frame, ASSET_FEATURES, where, nan_ok=set())
    present = tuple(c for c in LONG_VOL_FEATURES if c in frame.columns)
    _check_floats(frame, present, where, nan_ok=set(present))
    _check_plausible(frame, where, {c: b for c, b in ASSET_BOUNDS.items() if c in frame.columns})
    out = _normalised(frame, (*FEATURE_COLUMNS, *present))
    for name in LONG_VOL_FEATURES:
        if name not in out:
            out[name] = np.nan
    out["symbol"] = text.to_numpy()
    out["symbol"] = out["symbol"].astype("string")
    return out
