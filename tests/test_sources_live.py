"""sources.yahoo / fred / gdelt / http: parsed from recorded responses, never the network."""

from __future__ import annotations

import datetime as dt
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from trader_ml.data.ingest import ingest
from trader_ml.data.partitions import read_table
from trader_ml.data.sources import SourceOptions, make_source
from trader_ml.data.sources.fred import FredSource
from trader_ml.data.sources.gdelt import GdeltSource
from trader_ml.data.sources.http import http_get
from trader_ml.data.sources.yahoo import YahooSource, parse_chart
from trader_ml.errors import SourceError
from trader_ml.schema import CONTEXT_FEATURES

from .conftest import RECORDED, TODAY

D = dt.date.fromisoformat
NY = ZoneInfo("America/New_York")


class RecordedWeb:
    """Answers the three endpoints from files, and remembers what was asked."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.netloc == "query2.finance.yahoo.com":
            assert query["interval"] == "1d" and query["includeAdjustedClose"] == "true"
            assert int(query["period1"]) < int(query["period2"])
            ticker = parts.path.rsplit("/", 1)[1]
            path = RECORDED / f"yahoo_{ticker}.json"
            return path.read_bytes() if path.exists() else (RECORDED / "yahoo_not_found.json").read_bytes()
        if parts.netloc == "fred.stlouisfed.org":
            assert query["id"] == "T10Y2Y" and query["cosd"] <= query["coed"]
            return (RECORDED / "fred_T10Y2Y.csv").read_bytes()
        if parts.netloc == "api.gdeltproject.org":
            assert query["mode"] == "timelinetone" and query["format"] == "json"
            if query["query"] == "x":
                return (RECORDED / "gdelt_error.txt").read_bytes()
            return (RECORDED / "gdelt_tone.json").read_bytes()
        raise AssertionError(f"unexpected URL {url}")


def test_yahoo_uses_adjusted_closes_by_exchange_date():
    closes = parse_chart("AAPL", (RECORDED / "yahoo_AAPL.json").read_bytes())
    assert closes.index[0] == pd.Timestamp("2024-01-02")
    assert pd.Timestamp("2024-01-15") not in closes.index  # a market holiday
    assert pd.Timestamp("2024-01-09") not in closes.index  # the null adjclose is dropped
    import json

    raw = json.loads((RECORDED / "yahoo_AAPL.json").read_text())["chart"]["result"][0]
    assert closes.iloc[0] == raw["indicators"]["adjclose"][0]["adjclose"][0]
    assert closes.iloc[0] != raw["indicators"]["quote"][0]["close"][0]


@pytest.mark.parametrize(("hour", "kept"), [(10, False), (17, True)])
def test_yahoo_drops_todays_bar_until_the_close(hour, kept):
    now = dt.datetime(2024, 5, 31, hour, 0, tzinfo=NY)
    raw = YahooSource(["AAPL"], get=RecordedWeb(), now=now).fetch(D("2024-05-01"), D("2024-05-31"))
    assert (raw.closes.index[-1] == pd.Timestamp("2024-05-31")) is kept
    assert list(raw.closes.columns) == ["SPY", "HYG", "IEF", "VIXY", "TLT", "AAPL"]
    assert raw.symbols == ("AAPL",)


def test_yahoo_unknown_ticker_is_one_clear_error():
    with pytest.raises(SourceError, match=r"yahoo: no data for NOPE \(Not Found: No data found"):
        YahooSource(["NOPE"], get=RecordedWeb()).fetch(D("2024-05-01"), D("2024-05-31"))


def test_fred_skips_holidays_and_fetches_a_lookback():
    web = RecordedWeb()
    slope = FredSource(get=web).fetch(D("2024-01-02"), D("2024-05-31")).yield_slope
    assert pd.Timestamp("2024-01-15") not in slope.index  # '.' on a holiday
    assert slope.notna().all() and len(slope) > 100
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(web.urls[0]).query))
    assert query["cosd"] == "2023-12-19" and query["coed"] == "2024-05-31"


def test_gdelt_asks_in_half_years_and_averages_by_day():
    web = RecordedWeb()
    tone = GdeltSource(get=web).fetch(D("2024-01-02"), D("2024-12-31")).news_tone
    assert len(web.urls) == 3  # 2023-12-26..2024-06-23, 06-24..12-21, 12-22..12-31
    assert tone.index.is_unique and tone.index.is_monotonic_increasing
    assert tone.between(-10, 10).all()


def test_gdelt_plain_text_answer_becomes_the_error():
    with pytest.raises(SourceError, match="gdelt: Your search contained a keyword that was too short"):
        GdeltSource(query="x", get=RecordedWeb()).fetch(D("2024-05-01"), D("2024-05-31"))


def test_gdelt_before_its_first_day_is_empty():
    web = RecordedWeb()
    assert GdeltSource(get=web).fetch(D("2010-01-01"), D("2010-12-31")).news_tone.empty
    assert web.urls == []


def test_yahoo_fred_gdelt_together_fill_every_context_column(local_store):
    source = make_source("yahoo,fred,gdelt", SourceOptions(symbols=("aapl",)), get=RecordedWeb())
    report = ingest(source, local_store, D("2024-05-01"), D("2024-05-30"), today=TODAY, log=lambda _: None)
    assert report.unavailable == () and report.symbols == 1
    context = read_table(local_store, "context")
    assert context[list(CONTEXT_FEATURES)].notna().all(axis=None)
    features = read_table(local_store, "features")
    assert set(features["symbol"]) == {"AAPL"} and len(features) == report.days


class _Flaky(BaseHTTPRequestHandler):
    answers: list[int] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        status = self.answers.pop(0)
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"body" if status == 200 else b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/x", _Flaky.answers
    server.shutdown()


def test_http_retries_throttling_then_succeeds(flaky_server):
    url, answers = flaky_server
    answers[:] = [429, 503, 200]
    assert http_get(url, backoff=0.01) == b"body"
    assert answers == []


def test_http_gives_up_with_one_line(flaky_server):
    url, answers = flaky_server
    answers[:] = [404]
    with pytest.raises(SourceError, match=r"GET .* failed: HTTP 404"):
        http_get(url, backoff=0.01)
    answers[:] = [503, 503]
    with pytest.raises(SourceError, match="HTTP 503"):
        http_get(url, attempts=2, backoff=0.01)
    assert np.isclose(len(answers), 0)
