"""Daily average news tone from the GDELT DOC 2.0 API (``timelinetone`` mode)."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

import pandas as pd

from trader_ml.data.sources.base import RawMarket
from trader_ml.data.sources.http import Getter, http_get
from trader_ml.errors import SourceError

DOC_URL = "https://api.gdeltproject.org/api/v2/doc/doc?{query}"
DEFAULT_QUERY = '(economy OR "stock market" OR inflation OR recession) sourcelang:english'
FIRST_DAY = dt.date(2017, 1, 1)  # the DOC API's timelines start here
CHUNK = dt.timedelta(days=180)  # one request per half year keeps daily resolution
LOOKBACK = dt.timedelta(days=7)


def tone_url(query: str, start: dt.date, end: dt.date) -> str:
    params = {
        "query": query,
        "mode": "timelinetone",
        "format": "json",
        "startdatetime": start.strftime("%Y%m%d000000"),
        "enddatetime": end.strftime("%Y%m%d235959"),
    }
    return DOC_URL.format(query=urllib.parse.urlencode(params))


def parse_tone(body: bytes) -> pd.Series:
    """Mean tone per calendar day (UTC) from one timeline response."""
    try:
        timeline = json.loads(body)["timeline"]
    except (ValueError, KeyError, TypeError):
        # The API answers a bad query with a plain-text sentence instead of JSON.
        raise SourceError(f"gdelt: {body[:200].decode('utf-8', 'replace').strip()}") from None
    if not timeline:
        return pd.Series(dtype=float)
    points = timeline[0].get("data", [])
    stamps = pd.to_datetime([p["date"] for p in points], format="%Y%m%dT%H%M%SZ")
    tone = pd.Series([float(p["value"]) for p in points], index=stamps, dtype=float)
    return tone.groupby(tone.index.normalize()).mean()


class GdeltSource:
    """Fills ``gdelt_avg_tone``; combine it with a price source (``--source yahoo,gdelt``)."""

    name = "gdelt"

    def __init__(self, query: str = DEFAULT_QUERY, get: Getter = http_get) -> None:
        self.query = query
        self.get = get

    def default_range(self, today: dt.date) -> tuple[dt.date, dt.date]:
        return FIRST_DAY, today

    def fetch(self, start: dt.date, end: dt.date) -> RawMarket:
        lo = max(start - LOOKBACK, FIRST_DAY)
        parts = []
        while lo <= end:
            hi = min(lo + CHUNK, end)
            parts.append(parse_tone(self.get(tone_url(self.query, lo, hi))))
            lo = hi + dt.timedelta(days=1)
        tone = pd.concat(parts) if parts else pd.Series(dtype=float)
        return RawMarket(news_tone=tone[~tone.index.duplicated(keep="last")].sort_index())
