"""features: values equal an independent, loop-by-loop computation from the bundled CSVs, and no
row changes when later days are appended."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader_ml.data.features import context_rows, feature_rows
from trader_ml.data.ingest import ingest
from trader_ml.data.partitions import read_table
from trader_ml.data.sources.base import RawMarket
from trader_ml.data.sources.sample import BUNDLED, SampleSource
from trader_ml.schema import FEATURE_COLUMNS, LONG_VOL_FEATURES

from .conftest import TODAY


def _column(name: str, file: str) -> tuple[list[str], list[float]]:
    with gzip.open(BUNDLED / file, "rt") as f:
        rows = list(csv.DictReader(f))
    return [r["Date"] for r in rows], [float(r[name]) for r in rows]


def _by_hand(closes: list[float], spy: list[float], t: int) -> dict[str, float]:
    """The DESIGN.md definitions, written out with the standard library only."""

    def ret(p, n):
        return p[t] / p[t - n] - 1

    def vol(p, n):
        logs = [math.log(p[i] / p[i - 1]) for i in range(t - n + 1, t + 1)]
        return statistics.stdev(logs) * math.sqrt(252)

    def dd(p, n):
        return p[t] / max(p[t - n + 1 : t + 1]) - 1

    return {
        "return_1d": ret(closes, 1),
        "return_5d": ret(closes, 5),
        "return_21d": ret(closes, 21),
        "return_63d": ret(closes, 63),
        "vol_21d": vol(closes, 21),
        "vol_63d": vol(closes, 63),
        "drawdown_21d": dd(closes, 21),
        "drawdown_63d": dd(closes, 63),
        "rel_strength_21d": ret(closes, 21) - ret(spy, 21),
        "rel_strength_63d": ret(closes, 63) - ret(spy, 63),
        "spy_return_1d": ret(spy, 1),
        "spy_return_21d": ret(spy, 21),
        "spy_vol_21d": vol(spy, 21),
    }


CHECKS = [("AAPL", "2008-10-15"), ("MSFT", "2000-03-10"), ("XOM", "2020-03-16"), ("JPM", "1991-06-03")]


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    """The bundled sample for 1991-2020's checked days, ingested in short windows per check."""
    from trader_ml.store import LocalStore

    store = LocalStore(tmp_path_factory.mktemp("sample"))
    for _, day in CHECKS:
        d = dt.date.fromisoformat(day)
        # A window starting days before the checked day: its history comes from the lookback.
        ingest(
            SampleSource(), store, d - dt.timedelta(days=3), d + dt.timedelta(days=3), today=TODAY, log=lambda _: None
        )
    return store


@pytest.mark.parametrize(("symbol", "day"), CHECKS)
def test_features_match_hand_computation(sample_store, symbol, day):
    dates, spy = _column("SP500", "sp500_index.csv.gz")
    _, closes = _column(symbol, "sp500_stocks.csv.gz")
    expected = _by_hand(closes, spy, dates.index(day))

    features = read_table(sample_store, "features", start=dt.date.fromisoformat(day), end=dt.date.fromisoformat(day))
    row = features[features["symbol"] == symbol].iloc[0]
    context = read_table(sample_store, "context", start=dt.date.fromisoformat(day), end=dt.date.fromisoformat(day))
    for name, value in expected.items():
        got = context[name].iloc[0] if name.startswith("spy_") else row[name]
        assert got == pytest.approx(value, abs=1e-9), name
    # The sample has SPY only: every other context column is NaN, never invented.
    assert (
        context[["yield_slope", "credit_spread_proxy", "vixy_return_21d", "risk_off_proxy", "gdelt_avg_tone"]]
        .isna()
        .all(axis=None)
    )


def test_window_needs_full_history():
    days = pd.bdate_range("2024-01-01", periods=70)
    closes = pd.DataFrame({"SPY": np.linspace(100, 110, 70), "AAA": np.linspace(50, 60, 70)}, index=days)
    rows, skipped = feature_rows(RawMarket(closes=closes, symbols=("AAA",)))
    assert len(rows) == 70 - 63  # 64 closes are needed for return_63d and vol_63d
    assert rows["date"].iloc[0] == days[63]
    assert skipped == 63
    context = context_rows(RawMarket(closes=closes))
    assert context["date"].iloc[0] == days[21]  # 22 closes for spy_vol_21d


def test_missing_close_skips_rows_instead_of_filling():
    days = pd.bdate_range("2024-01-01", periods=100)
    a = np.linspace(50, 60, 100)
    a[80] = np.nan
    closes = pd.DataFrame({"SPY": np.linspace(100, 110, 100), "AAA": a}, index=days)
    rows, skipped = feature_rows(RawMarket(closes=closes, symbols=("AAA",)))
    assert not rows[list(FEATURE_COLUMNS)].isna().any(axis=None)
    assert rows[list(LONG_VOL_FEATURES)].isna().all(axis=None)  # 100 days: no long window is full
    assert days[80] not in set(rows["date"])
    assert days[81] not in set(rows["date"])  # its 1-day return touches the gap
    assert skipped > 0


def test_as_of_values_go_stale():
    days = pd.bdate_range("2024-01-01", periods=40)
    closes = pd.DataFrame({"SPY": np.linspace(100, 110, 40)}, index=days)
    slope = pd.Series([0.5, 0.7], index=pd.to_datetime(["2024-01-25", "2024-01-30"]))
    context = context_rows(RawMarket(closes=closes, yield_slope=slope)).set_index("date")
    assert context.loc["2024-01-31", "yield_slope"] == 0.7  # last value on or before the day
    assert context.loc["2024-02-02", "yield_slope"] == 0.7
    assert np.isnan(context.loc["2024-02-07", "yield_slope"])  # 8 days old: stale


def test_literal_values_read_off_the_csv(sample_store):
    """Two numbers checked by hand against the CSV lines quoted in the comments."""
    day = dt.date(2020, 3, 16)
    context = read_table(sample_store, "context", start=day, end=day)
    # 2020-03-13,2711.02 and 2020-03-16,2386.13 in sp500_index.csv.gz
    assert context["spy_return_1d"].iloc[0] == pytest.approx(2386.13 / 2711.02 - 1, abs=1e-12)
    day = dt.date(2008, 10, 15)
    features = read_table(sample_store, "features", start=day, end=day).set_index("symbol")
    # AAPL closes 3.159 on 2008-10-14 and 2.973 on 2008-10-15 in sp500_stocks.csv.gz
    assert features.loc["AAPL", "return_1d"] == pytest.approx(2.973 / 3.159 - 1, abs=1e-12)


def _market(days: pd.DatetimeIndex, seed: int) -> RawMarket:
    """Random-walk closes for the context tickers and three assets, a yield slope and a tone."""
    rng = np.random.default_rng(seed)
    tickers = ["SPY", "HYG", "IEF", "VIXY", "TLT", "AAA", "BBB", "CCC"]
    closes = pd.DataFrame(
        100 * np.exp(np.cumsum(rng.normal(0, 0.01, (len(days), len(tickers))), axis=0)), index=days, columns=tickers
    )
    observed = days[::3]
    return RawMarket(
        closes=closes,
        symbols=("AAA", "BBB", "CCC"),
        yield_slope=pd.Series(rng.normal(0.5, 0.3, len(observed)), index=observed),
        news_tone=pd.Series(rng.normal(-1, 1, len(observed)), index=observed),
    )


def _appended(base: RawMarket, extra_days: int, scale: float, seed: int) -> RawMarket:
    """``base`` with ``extra_days`` more days of arbitrary values (closes, slope and tone)."""
    more = pd.bdate_range(base.closes.index[-1] + pd.Timedelta(days=1), periods=extra_days)
    tail = _market(more, seed)
    closes = pd.concat([base.closes, tail.closes * scale])
    return RawMarket(
        closes=closes,
        symbols=base.symbols,
        yield_slope=pd.concat([base.yield_slope, tail.yield_slope * scale]),
        news_tone=pd.concat([base.news_tone, tail.news_tone - scale]),
    )


def earlier_rows_moved(base: RawMarket, longer: RawMarket) -> list[str]:
    """The tables whose rows up to ``base``'s last day differ once later days are appended."""
    last = base.closes.index[-1]
    moved = []
    for name, compute in (("context", context_rows), ("features", lambda raw: feature_rows(raw)[0])):
        before, after = compute(base), compute(longer)
        after = after[after["date"] <= last].reset_index(drop=True)
        if not before.equals(after):
            moved.append(name)
    return moved


BASE_DAYS = pd.bdate_range("2020-01-01", periods=110)


@given(extra_days=st.integers(1, 40), scale=st.floats(0.2, 5.0), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_appending_days_never_changes_an_earlier_row(extra_days, scale, seed):
    base = _market(BASE_DAYS, 7)
    assert earlier_rows_moved(base, _appended(base, extra_days, scale, seed)) == []


def test_the_causality_check_catches_a_feature_that_looks_ahead(monkeypatch):
    """A drawdown over a centred window (it reads closes after the day) must be caught."""
    from trader_ml.data import features

    monkeypatch.setattr(features, "drawdown", lambda prices, days: prices / prices.rolling(days, center=True).max() - 1)
    base = _market(BASE_DAYS, 7)
    assert earlier_rows_moved(base, _appended(base, 30, 2.0, 1)) == ["features"]


def test_long_memory_columns_match_hand_computed_values_and_ignore_earlier_history():
    rng = np.random.default_rng(3)
    days = pd.bdate_range("2020-01-01", periods=400)
    closes = pd.DataFrame(
        {
            "SPY": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400))),
            "AAA": 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 400))),
        },
        index=days,
    )
    rows, _ = feature_rows(RawMarket(closes=closes, symbols=("AAA",)))
    last = rows.iloc[-1]
    r = np.diff(np.log(closes["AAA"].to_numpy()))
    assert last["vol_126d"] == pytest.approx(r[-126:].std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert last["vol_252d"] == pytest.approx(r[-252:].std(ddof=1) * math.sqrt(252), rel=1e-12)
    w = 0.5 ** (np.arange(252) / 42)  # today's return first
    assert last["vol_ewm_42d"] == pytest.approx(math.sqrt((w * r[::-1][:252] ** 2).sum() / w.sum() * 252), rel=1e-12)
    first_full = rows.dropna(subset=["vol_252d"])["date"].iloc[0]
    assert first_full == days[252]  # 253 closes give the first 252 returns
    later, _ = feature_rows(RawMarket(closes=closes.iloc[100:], symbols=("AAA",)))
    both = rows.merge(later, on=["date", "symbol"], suffixes=("", "_later")).dropna(subset=["vol_252d_later"])
    for name in LONG_VOL_FEATURES:
        assert (both[name] == both[f"{name}_later"]).all()  # a day's value never depends on earlier history
