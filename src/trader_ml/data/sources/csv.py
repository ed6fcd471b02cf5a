"""Closing prices from wide CSV files (a Date column, then one column per ticker)."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from trader_ml.data.sources.base import RawMarket, universe
from trader_ml.errors import SourceError
from trader_ml.schema import SPY

MAX_LINE_BYTES = 1 << 20  # a row of 5,000 tickers' prices is about 60 kB: a longer line is damage
QUOTED_CHARS = 40  # how much of a bad value a message repeats


def quoted(value: object) -> str:
    """A value as a message repeats it: its start, never a gigabyte of it."""
    text = str(value)
    return repr(text) if len(text) <= QUOTED_CHARS else f"{text[:QUOTED_CHARS]!r}... ({len(text):,} characters)"


def clipped(name: object) -> str:
    """A name (a column, a ticker) as a message repeats it: whole when short."""
    text = str(name)
    return text if len(text) <= QUOTED_CHARS else quoted(text)


def check_line_lengths(path: Path) -> None:
    """SourceError naming the first line over ``MAX_LINE_BYTES``, read in bounded pieces, so
    a damaged file never reaches the parser (which would hold the whole line in memory)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for number, line in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), start=1):
                if len(line) > MAX_LINE_BYTES:
                    raise SourceError(f"{path}: line {number} is over {MAX_LINE_BYTES:,} bytes: not a price file")
    except (OSError, EOFError) as e:
        raise SourceError(f"{path}: cannot read CSV: {e}") from None


def read_price_csv(path: Path, rename: dict[str, str] | None = None) -> pd.DataFrame:
    """One wide price file, checked line by line: dates parse, ascend, repeat never; prices > 0."""
    check_line_lengths(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, EOFError) as e:
        raise SourceError(f"{path}: cannot read CSV: {quoted(e)}") from None
    date_col = next((c for c in raw.columns if c.lower() == "date"), None)
    if date_col is None:
        raise SourceError(f"{path}: no 'Date' column (columns: {clipped(', '.join(raw.columns))})")
    if len(raw) == 0:
        raise SourceError(f"{path}: no rows")
    line = np.arange(len(raw)) + 2  # header is line 1
    dates = pd.to_datetime(raw[date_col], format="%Y-%m-%d", errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise SourceError(f"{path}: line {line[i]}: unparseable date {quoted(raw[date_col].iloc[i])}")
    dup = dates.duplicated().to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        raise SourceError(f"{path}: line {line[i]}: duplicate date {dates.iloc[i].date()}")
    back = (dates.diff() <= pd.Timedelta(0)).to_numpy()
    if back.any():
        i = int(np.argmax(back))
        raise SourceError(f"{path}: line {line[i]}: date {dates.iloc[i].date()} is not after the previous row")
    prices = {}
    for col in raw.columns.drop(date_col):
        values = pd.to_numeric(raw[col].replace("", np.nan), errors="coerce")
        text_bad = values.isna().to_numpy() & (raw[col] != "").to_numpy()
        value_bad = ~np.isfinite(values.fillna(1.0).to_numpy()) | (values <= 0).to_numpy()
        bad = text_bad | value_bad
        if bad.any():
            i = int(np.argmax(bad))
            raise SourceError(
                f"{path}: line {line[i]}, column {clipped(col)}: {quoted(raw[col].iloc[i])} is not a positive finite price"
            )
        prices[(rename or {}).get(col, col)] = values.to_numpy(dtype=float)
    frame = pd.DataFrame(prices, index=pd.DatetimeIndex(dates, name="date"))
    return frame


class CsvSource:
    """Prices from one or more wide CSV files (``.csv`` or ``.csv.gz``); SPY must be among them.

    Such files carry no yields or news tone: those context columns stay NaN.
    """

    name = "csv"

    def __init__(self, paths: Sequence[str | Path], rename: dict[str, str] | None = None) -> None:
        if not paths:
            raise SourceError("the csv source needs --prices FILE (a Date column and one column per ticker)")
        self.paths = [Path(p) for p in paths]
        self.rename = rename
        self._closes: pd.DataFrame | None = None

    def closes(self) -> pd.DataFrame:
        if self._closes is None:
            frames = [read_price_csv(p, self.rename) for p in self.paths]
            closes = frames[0]
            for p, f in zip(self.paths[1:], frames[1:], strict=True):
                clash = sorted(set(closes.columns) & set(f.columns))
                if clash:
                    raise SourceError(f"{p}: ticker {clipped(clash[0])} appears in more than one price file")
                closes = closes.join(f, how="outer")
            if SPY not in closes:
                raise SourceError(f"no {SPY} column in {', '.join(map(str, self.paths))}: trading days are SPY's days")
            self._closes = closes
        return self._closes

    def default_range(self, today: dt.date) -> tuple[dt.date, dt.date]:
        spy = self.closes()[SPY].dropna()
        return spy.index[0].date(), spy.index[-1].date()

    def fetch(self, start: dt.date, end: dt.date) -> RawMarket:
        closes = self.closes().loc[pd.Timestamp(start) : pd.Timestamp(end)]
        return RawMarket(closes=closes, symbols=universe(list(closes.columns)))
