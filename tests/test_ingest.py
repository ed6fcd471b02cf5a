"""pipeline: ingest writes validated partitions, replaces re-run days, and never half-writes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from trader_ml.data.ingest import ingest
from trader_ml.data.partitions import read_table, select_days, stored_days
from trader_ml.data.sources.csv import CsvSource
from trader_ml.errors import SourceError, TraderMLError, ValidationError
from trader_ml.schema import REGIMES, partition_key

from .conftest import TODAY, store_snapshot

D = dt.date.fromisoformat
quiet = {"today": TODAY, "log": lambda _: None}


def test_ingest_writes_every_table(any_store, small_synthetic):
    report = ingest(small_synthetic, any_store, D("2003-01-01"), D("2003-03-31"), **quiet)
    weekdays = len(pd.bdate_range("2003-01-01", "2003-03-31"))  # the simulator trades on weekdays
    assert report.days == len(stored_days(any_store, "context")) == weekdays
    assert report.symbols == 6 and report.unavailable == ()
    context = read_table(any_store, "context")
    features = read_table(any_store, "features")
    regimes = read_table(any_store, "truth_regime")
    health = read_table(any_store, "truth_health")
    assert context["date"].min() == pd.Timestamp("2003-01-01")
    assert len(features) == report.feature_rows == weekdays * 6
    assert set(regimes["regime"]) <= set(REGIMES) and len(regimes) == weekdays
    assert len(health) == weekdays * 6
    assert not context.drop(columns="date").isna().any(axis=None)


def test_local_and_s3_hold_the_same_data(local_store, s3_store, small_synthetic):
    for store in (local_store, s3_store):
        ingest(small_synthetic, store, D("2003-01-01"), D("2003-02-28"), **quiet)
    assert local_store.list("") == s3_store.list("")
    for table in ("context", "features", "truth_health"):
        pd.testing.assert_frame_equal(read_table(local_store, table), read_table(s3_store, table))


def test_rerunning_a_day_replaces_it(local_store, small_synthetic):
    ingest(small_synthetic, local_store, D("2003-01-01"), D("2003-01-31"), **quiet)
    key = partition_key("features", "2003-01-15")
    original = local_store.read(key)
    local_store.write(key, b"damaged")
    ingest(small_synthetic, local_store, D("2003-01-15"), D("2003-01-15"), **quiet)
    assert local_store.read(key) == original


def test_incremental_runs_equal_one_backfill(local_store, tmp_path, small_synthetic):
    from trader_ml.store import LocalStore

    ingest(small_synthetic, local_store, D("2003-01-01"), D("2003-02-14"), **quiet)
    second = ingest(small_synthetic, local_store, None, D("2003-03-31"), **quiet)  # continues after 02-14
    assert second.start == D("2003-02-17")
    again = ingest(small_synthetic, local_store, None, D("2003-03-31"), **quiet)
    assert again.days == 0 and "up to date" in again.summary()
    once = LocalStore(tmp_path / "once")
    ingest(small_synthetic, once, D("2003-01-01"), D("2003-03-31"), **quiet)
    pd.testing.assert_frame_equal(read_table(local_store, "features"), read_table(once, "features"))


def test_max_days_reads_only_recent_partitions(local_store, small_synthetic):
    ingest(small_synthetic, local_store, D("2003-01-01"), D("2003-03-31"), **quiet)
    recent = read_table(local_store, "context", max_days=30)
    assert recent["date"].min() == pd.Timestamp("2003-03-03")  # 2003-03-01/02 is a weekend
    assert recent["date"].max() == pd.Timestamp("2003-03-31")
    assert select_days(["2024-01-01", "2024-12-30", "2024-12-31"], max_days=365) == ["2024-12-30", "2024-12-31"]
    assert select_days(["2024-01-01", "2024-12-30", "2024-12-31"], max_days=366) == [
        "2024-01-01",
        "2024-12-30",
        "2024-12-31",
    ]


def _write_csv(path, closes: pd.DataFrame) -> str:
    closes.rename_axis("Date").reset_index().to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.6f")
    return str(path)


@pytest.fixture
def prices(small_synthetic) -> pd.DataFrame:
    raw = small_synthetic.fetch(D("2003-01-01"), D("2003-12-31"))
    return raw.closes[["SPY", "HYG", "SYN000", "SYN001"]]


def test_csv_source_ingests_a_users_prices(local_store, tmp_path, prices):
    report = ingest(CsvSource([_write_csv(tmp_path / "p.csv", prices)]), local_store, **quiet)
    assert report.symbols == 2
    assert "credit_spread_proxy" in report.unavailable  # HYG without IEF
    assert report.end == D("2003-12-31")


def _lines(path):
    return open(path).read().splitlines()


BAD_CSV = [
    ("duplicate date", lambda ls: ls[:5] + [ls[4]] + ls[5:], r"line 6: duplicate date 2003-01-06"),
    ("unsorted", lambda ls: ls[:5] + [ls[6], ls[5]] + ls[7:], r"line 7: date 2003-01-07 is not after"),
    ("bad date", lambda ls: ls[:3] + ["2003-13-01" + ls[3][10:]] + ls[4:], r"line 4: unparseable date '2003-13-01'"),
    (
        "inf",
        lambda ls: ls[:9] + [ls[9].rsplit(",", 1)[0] + ",inf"] + ls[10:],
        r"line 10, column SYN001: 'inf' is not a positive finite price",
    ),
    ("negative", lambda ls: ls[:9] + [ls[9].rsplit(",", 1)[0] + ",-3.0"] + ls[10:], r"line 10, column SYN001"),
    ("text", lambda ls: ls[:9] + [ls[9].rsplit(",", 1)[0] + ",n/a"] + ls[10:], r"line 10, column SYN001: 'n/a'"),
    ("no SPY", lambda ls: [ls[0].replace("SPY", "QQQ")] + ls[1:], r"no SPY column"),
    ("no date", lambda ls: [ls[0].replace("Date", "When")] + ls[1:], r"no 'Date' column"),
    ("empty", lambda ls: ls[:1], r"no rows"),
]


@pytest.mark.parametrize(("name", "mutate", "message"), BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_bad_csv_is_rejected_and_store_untouched(local_store, tmp_path, prices, small_synthetic, name, mutate, message):
    ingest(small_synthetic, local_store, D("2003-01-01"), D("2003-01-31"), **quiet)
    before = store_snapshot(local_store)
    path = tmp_path / "bad.csv"
    good = _write_csv(path, prices)
    path.write_text("\n".join(mutate(_lines(good))) + "\n")
    with pytest.raises(SourceError, match=message) as err:
        ingest(CsvSource([path]), local_store, D("2003-01-01"), D("2003-12-31"), **quiet)
    assert str(err.value).startswith(str(path)) or "SPY" in str(err.value)
    assert store_snapshot(local_store) == before


def test_future_end_is_rejected(local_store, small_synthetic):
    with pytest.raises(TraderMLError, match="in the future"):
        ingest(small_synthetic, local_store, D("2026-11-01"), D("2026-12-01"), **quiet)
    assert local_store.list("") == []


def test_source_without_prices_is_rejected(local_store):
    from trader_ml.data.sources.fred import FredSource

    body = b"observation_date,T10Y2Y\n2024-01-02,0.5\n"
    with pytest.raises(SourceError, match="no SPY prices.*--source yahoo,fred"):
        ingest(FredSource(get=lambda url: body), local_store, D("2024-01-01"), D("2024-01-31"), **quiet)
    assert local_store.list("") == []


def test_unreadable_or_misplaced_partitions_are_named(local_store, small_synthetic):
    ingest(small_synthetic, local_store, D("2003-01-01"), D("2003-01-31"), **quiet)
    key = partition_key("context", "2003-01-10")
    local_store.write(key, b"not parquet")
    with pytest.raises(ValidationError, match=r"date=2003-01-10/part.parquet: unreadable parquet"):
        read_table(local_store, "context")
    local_store.write(key, local_store.read(partition_key("context", "2003-01-09")))
    with pytest.raises(ValidationError, match=r"date=2003-01-10/part.parquet: holds rows dated \['2003-01-09'\]"):
        read_table(local_store, "context")


def test_bad_row_in_a_partition_names_file_and_row(local_store, small_synthetic):
    import io

    import pyarrow.parquet as pq

    ingest(small_synthetic, local_store, D("2003-01-01"), D("2003-01-31"), **quiet)
    key = partition_key("features", "2003-01-21")
    table = pq.read_table(io.BytesIO(local_store.read(key))).to_pandas()
    table.loc[2, "vol_21d"] = np.nan
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    local_store.write(key, buffer.getvalue())
    with pytest.raises(
        ValidationError,
        match=r"date=2003-01-21/part.parquet, row 2 \(date 2003-01-21, symbol SYN002\): column vol_21d: NaN",
    ):
        read_table(local_store, "features")


def test_daily_json_views_hold_the_same_rows(local_store, tmp_path, prices):
    import json

    from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES, daily_key

    ingest(CsvSource([_write_csv(tmp_path / "p.csv", prices)]), local_store, D("2003-06-02"), D("2003-06-06"), **quiet)
    context = read_table(local_store, "context").set_index("date")
    features = read_table(local_store, "features")
    for day in ("2003-06-02", "2003-06-06"):
        view = json.loads(local_store.read(daily_key(day, "context.json")))
        row = context.loc[day]
        for column in CONTEXT_FEATURES:
            assert view[column] == (None if np.isnan(row[column]) else row[column])
        rows = json.loads(local_store.read(daily_key(day, "features.json")))["rows"]
        expected = features[features["date"] == day]
        assert [r["symbol"] for r in rows] == list(expected["symbol"])
        assert [[r[c] for c in ASSET_FEATURES] for r in rows] == expected[list(ASSET_FEATURES)].to_numpy().tolist()


@pytest.mark.parametrize("today", [dt.date(2028, 2, 29), dt.date(2028, 3, 1)])
@pytest.mark.parametrize("name", ["synthetic", "sample", "csv", "yahoo", "fred", "gdelt"])
def test_every_source_resolves_its_range_on_29_february_and_the_day_after(local_store, tmp_path, prices, name, today):
    """Ten years before 29 February is no day: the default span (which the range resolver
    computes even with explicit --start and --end) must not raise."""
    from trader_ml.data.ingest import resolve_range
    from trader_ml.data.sources import SourceOptions, make_source

    options = SourceOptions(symbols=("AAPL",), prices=(_write_csv(tmp_path / "p.csv", prices),))
    source = make_source(name, options, get=lambda url: b"")  # no fetch happens here
    first, last = source.default_range(today)
    assert first <= last <= today
    assert resolve_range(source, local_store, dt.date(2020, 1, 2), dt.date(2020, 2, 28), today) == (
        dt.date(2020, 1, 2),
        dt.date(2020, 2, 28),
        False,
    )
    start, end, _ = resolve_range(source, local_store, None, None, today)
    assert start <= end
