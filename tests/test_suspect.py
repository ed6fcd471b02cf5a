"""data/suspect.py: each rule on closes built for it, the bundled history (a real crash is not a
tick), marks through ingest (kept, cleared, accepted), and validate reading the daily JSON."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from trader_ml.data import suspect
from trader_ml.data.ingest import ingest
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.errors import TraderMLError
from trader_ml.schema import daily_key, suspect_key
from trader_ml.serving.daily import stored_days
from trader_ml.store import LocalStore

from .conftest import TODAY, main_here

STOCKS = tuple(f"S{i}" for i in range(8))


def market(days: int = 200, seed: int = 0) -> pd.DataFrame:
    """SPY and eight stocks moving 1% a day, the stocks following the market."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.008, days)
    moves = {"SPY": common, **{s: common + rng.normal(0, 0.006, days) for s in STOCKS}}
    index = pd.bdate_range("2020-01-01", periods=days)
    return pd.DataFrame({k: 100 * np.exp(np.cumsum(v)) for k, v in moves.items()}, index=index)


def found(closes: pd.DataFrame, last: int = 3) -> dict[str, list[str]]:
    out = suspect.find(closes, STOCKS, closes.index[-last:])
    return {day: sorted({r.rule for r in reasons}) for day, reasons in out.items()}


def test_a_clean_market_has_no_suspect_day():
    closes = market()
    assert suspect.find(closes, STOCKS, closes.index) == {}


def test_a_bad_print_names_the_market_its_constituents_and_the_revert():
    closes = market()
    bad = closes.index[-2]
    closes.loc[bad, "SPY"] *= 0.62
    closes.loc[bad, list(STOCKS)] *= np.linspace(0.5, 0.7, len(STOCKS))
    out = suspect.find(closes, STOCKS, closes.index[-3:])
    day, after = bad.date().isoformat(), closes.index[-1].date().isoformat()
    assert sorted({r.rule for r in out[day]}) == ["constituents", "move", "revert"]
    assert {r.rule for r in out[after]} == {"revert"}  # the clean day after undoes it: named too
    move = next(r for r in out[day] if r.rule == "move")
    assert (
        move.symbol == "SPY" and move.text.startswith("SPY return -38.") and "times its 63-day volatility" in move.text
    )


def test_a_real_shock_that_does_not_revert_is_no_tick():
    """A market-wide fall of 12% with every stock down with it, after volatility had risen, as
    in March 2020: nothing undoes it the next day, and nothing is marked."""
    closes = market()
    tail = closes.index[-40:]
    noise = np.random.default_rng(1).normal(0, 0.03, (40, closes.shape[1]))  # a month of high volatility
    closes.loc[tail] *= np.exp(np.cumsum(noise, axis=0))
    closes.loc[closes.index[-1] :] *= 0.88
    assert found(closes, 1) == {}


def test_the_market_against_its_constituents():
    closes = market()
    closes.loc[closes.index[-1], "SPY"] *= 0.93  # SPY alone falls 7% while its names are flat
    assert found(closes, 1) == {closes.index[-1].date().isoformat(): ["disagree"]}


def test_a_stale_close_is_named_only_for_a_series_that_usually_moves():
    closes = market()
    closes.iloc[-6:, closes.columns.get_loc("S3")] = closes.iloc[-6, closes.columns.get_loc("S3")]
    thin = closes["S5"].to_numpy().copy()
    thin[::3] = np.roll(thin, 1)[::3]  # a third of its days close unchanged: its own history
    closes["S5"] = thin
    closes.iloc[-6:, closes.columns.get_loc("S5")] = closes.iloc[-6, closes.columns.get_loc("S5")]
    out = suspect.find(closes, STOCKS, closes.index[-1:])
    reasons = out[closes.index[-1].date().isoformat()]
    assert [(r.rule, r.symbol) for r in reasons] == [("stale", "S3")]
    assert "unchanged for 5 trading days" in reasons[0].text


def test_the_bundled_history_has_no_suspect_day():
    """33 years of the S&P 500 and 20 large caps, 2008 and March 2020 among them: nothing marked."""
    from trader_ml.data.features import trading_day_closes
    from trader_ml.data.sources import make_source

    raw = make_source("sample").fetch(dt.date(1990, 1, 1), dt.date(2022, 12, 31))
    closes = trading_day_closes(raw)
    assert pd.Timestamp("2008-10-15") in closes.index and pd.Timestamp("2020-03-16") in closes.index
    assert suspect.find(closes, raw.symbols, closes.index) == {}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> LocalStore:
    store = LocalStore(tmp_path_factory.mktemp("suspect") / "store")
    source = SyntheticSource(SyntheticParams(seed=5, n_symbols=6))
    ingest(source, store, dt.date(2007, 1, 1), dt.date(2007, 12, 31), today=TODAY, log=lambda _: None)
    return store


def test_a_mark_keeps_its_acceptance_only_for_the_same_reasons(store, tmp_path):
    from .conftest import copy_of

    marked = copy_of(store, tmp_path / "m")
    day = stored_days(marked)[-1]
    reasons = [suspect.Reason("move", "SPY", "SPY return -38.0% ...")]
    writes, _ = suspect.mark_items(marked, {day: reasons}, [day])
    marked.write_many(writes)
    assert [m.day for m in suspect.accept(marked, [day])] == [day]
    writes, deletes = suspect.mark_items(marked, {day: reasons}, [day])  # a re-ingest, same reasons
    assert json.loads(writes[0][1])["accepted"] is not None and deletes == []
    other = [suspect.Reason("stale", "S1", "S1 closed at 10 unchanged for 5 trading days")]
    writes, _ = suspect.mark_items(marked, {day: other}, [day])
    assert json.loads(writes[0][1])["accepted"] is None  # new reasons ask again
    writes, deletes = suspect.mark_items(marked, {}, [day])  # clean now: the mark goes
    assert writes == [] and deletes == [suspect_key(day)]
    with pytest.raises(TraderMLError, match="is not a suspect day"):
        suspect.accept(marked, [stored_days(marked)[0]])


def test_validate_names_a_truncated_daily_file(store, tmp_path, capsys):
    from .conftest import copy_of

    damaged = copy_of(store, tmp_path / "d")
    day = stored_days(damaged)[-5]
    key = daily_key(day, "features.json")
    damaged.write(key, damaged.read(key)[:100])
    result = main_here(capsys, "validate", "--store", damaged.url)
    assert result.returncode == 2
    assert f"date={day}/features.json" in result.stderr and f"--start {day} --end {day}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert main_here(capsys, "validate", "--store", store.url).returncode == 0
