"""Adjusted daily closes from Yahoo Finance's public chart endpoint."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from trader_ml.data.sources.base import RawMarket, universe, wide_closes, years_before
from trader_ml.data.sources.http import Getter, http_get
from trader_ml.errors import SourceError
from trader_ml.schema import CLOSE_SETTLED, CONTEXT_TICKERS, MARKET_TIMEZONE

CHART_URL = "https://query2.finance.yahoo.com/v8/finance/chart/{ticker}?{query}"
NEW_YORK = ZoneInfo(MARKET_TIMEZONE)  # a bar for today is a close only after CLOSE_SETTLED


def chart_url(ticker: str, start: dt.date, end: dt.date) -> str:
    utc = dt.UTC
    query = urllib.parse.urlencode(
        {
            "period1": int(dt.datetime.combine(start, dt.time(), utc).timestamp()),
            "period2": int(dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), utc).timestamp()),
            "interval": "1d",
            "events": "div,split",
            "includeAdjustedClose": "true",
        }
    )
    return CHART_URL.format(ticker=urllib.parse.quote(ticker), query=query)


def parse_chart(ticker: str, body: bytes) -> pd.Series:
    """Adjusted closes by exchange-local date from one chart response."""
    try:
        chart = json.loads(body)["chart"]
    except (ValueError, KeyError, TypeError):
        raise SourceError(f"yahoo: unexpected response for {ticker}: {body[:120]!r}") from None
    if chart.get("error") or not chart.get("result"):
        error = chart.get("error") or {}
        raise SourceError(f"yahoo: no data for {ticker} ({error.get('code', 'empty')}: {error.get('description', '')})")
    result = chart["result"][0]
    stamps = result.get("timestamp") or []
    indicators = result.get("indicators", {})
    adjclose = (indicators.get("adjclose") or [{}])[0].get("adjclose")
    if adjclose is None:
        adjclose = (indicators.get("quote") or [{}])[0].get("close") or []
    if len(adjclose) != len(stamps):
        raise SourceError(f"yahoo: {ticker}: {len(stamps)} timestamps but {len(adjclose)} closes")
    offset = int(result.get("meta", {}).get("gmtoffset", 0))
    days = pd.to_datetime(np.asarray(stamps, dtype="int64") + offset, unit="s").normalize()
    closes = pd.Series(np.asarray(adjclose, dtype=float), index=days, name=ticker)
    closes = closes[~closes.index.duplicated(keep="last")].dropna()
    return closes


class YahooSource:
    """SPY, HYG, IEF, VIXY and TLT for the context row, plus the user's ``symbols``."""

    name = "yahoo"

    def __init__(
        self,
        symbols: Sequence[str],
        get: Getter = http_get,
        now: dt.datetime | None = None,
    ) -> None:
        self.symbols = universe([s.upper() for s in symbols])
        self.get = get
        self.now = now

    def default_range(self, today: dt.date) -> tuple[dt.date, dt.date]:
        return years_before(today, 10), today

    def fetch(self, start: dt.date, end: dt.date) -> RawMarket:
        tickers = [*CONTEXT_TICKERS, *self.symbols]
        series = {t: parse_chart(t, self.get(chart_url(t, start, end))) for t in tickers}
        closes = wide_closes(series).loc[pd.Timestamp(start) : pd.Timestamp(end)]
        now = (self.now or dt.datetime.now(NEW_YORK)).astimezone(NEW_YORK)
        if now.time() < CLOSE_SETTLED and len(closes) and closes.index[-1].date() >= now.date():
            closes = closes.iloc[:-1]  # today's bar is still moving
        return RawMarket(closes=closes, symbols=self.symbols)
