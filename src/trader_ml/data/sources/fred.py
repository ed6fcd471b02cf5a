"""The 10Y-2Y Treasury slope (FRED series T10Y2Y, percentage points) from FRED's CSV endpoint."""

from __future__ import annotations

import datetime as dt
import io
import urllib.parse

import pandas as pd

from trader_ml.data.sources.base import RawMarket, years_before
from trader_ml.data.sources.http import Getter, http_get
from trader_ml.errors import SourceError

CSV_URL = "https://fred.stlouisfed.org/graph/fredgraph.csv?{query}"
SERIES = "T10Y2Y"
LOOKBACK = dt.timedelta(days=14)  # the slope is taken as of each day: fetch a little earlier


def series_url(series: str, start: dt.date, end: dt.date) -> str:
    query = urllib.parse.urlencode({"id": series, "cosd": start.isoformat(), "coed": end.isoformat()})
    return CSV_URL.format(query=query)


def parse_series(series: str, body: bytes) -> pd.Series:
    """Observations by date; FRED writes '.' for a day without a value."""
    try:
        frame = pd.read_csv(io.BytesIO(body), na_values=["."], dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise SourceError(f"fred: unexpected response for {series}: {body[:120]!r}") from None
    if frame.shape[1] != 2 or frame.columns[1] != series:
        raise SourceError(f"fred: unexpected columns for {series}: {list(frame.columns)}")
    dates = pd.to_datetime(frame.iloc[:, 0], format="%Y-%m-%d", errors="coerce")
    values = pd.to_numeric(frame.iloc[:, 1], errors="coerce")
    if dates.isna().any():
        raise SourceError(f"fred: {series}: unparseable date {frame.iloc[int(dates.isna().argmax()), 0]!r}")
    return pd.Series(values.to_numpy(), index=pd.DatetimeIndex(dates), name=series).dropna()


class FredSource:
    """Fills ``yield_slope``; combine it with a price source (``--source yahoo,fred``)."""

    name = "fred"

    def __init__(self, get: Getter = http_get) -> None:
        self.get = get

    def default_range(self, today: dt.date) -> tuple[dt.date, dt.date]:
        return years_before(today, 10), today

    def fetch(self, start: dt.date, end: dt.date) -> RawMarket:
        slope = parse_series(SERIES, self.get(series_url(SERIES, start - LOOKBACK, end)))
        return RawMarket(yield_slope=slope)
