"""A quarter as a new user lives it: a synthetic store trained, then 60 trading days ingested
and answered one by one, with a bad print on day 30 (SPY -38%, VIXY x4, every stock -30% to
-50%) brought in through ``ingest --source csv``. Ingest, validate, every answer whose window
holds the day and the monitor name it; re-ingesting the day with good prices clears them."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trader_ml.cli import main
from trader_ml.data.features import LOOKBACK_CALENDAR_DAYS
from trader_ml.data.ingest import ingest
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.monitor.record import live_record
from trader_ml.schema import predictions_key
from trader_ml.serving.handler import daily_answer
from trader_ml.serving.predictor import Predictor
from trader_ml.store import LocalStore

from .conftest import TODAY, copy_of

SERVED, BAD = 60, 30
SOURCE = SyntheticSource(SyntheticParams(seed=5, n_symbols=8))
TRAINED_THROUGH = dt.date(2009, 3, 31)


def cli(*args: str) -> subprocess.CompletedProcess:
    """``trader-ml ARGS`` in this interpreter, its output captured (a module fixture has no capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(["trader-ml", *args], code, out.getvalue(), err.getvalue())


def bad_print_csv(path, day: str) -> None:
    """Every ticker's close from the simulator through ``day``, with ``day`` misprinted."""
    first = dt.date.fromisoformat(day) - dt.timedelta(days=LOOKBACK_CALENDAR_DAYS + 10)
    closes = SOURCE.fetch(first, dt.date.fromisoformat(day)).closes.copy()
    closes = closes[closes.index <= pd.Timestamp(day)]
    row = closes.index[-1]
    stocks = [c for c in closes.columns if c.startswith("SYN")]
    closes.loc[row, "SPY"] *= 0.62
    closes.loc[row, "VIXY"] *= 4.0
    closes.loc[row, stocks] *= np.random.default_rng(0).uniform(0.5, 0.7, len(stocks))
    closes.index.name = "Date"
    closes.to_csv(path, date_format="%Y-%m-%d")


@pytest.fixture(scope="module")
def quarter(tmp_path_factory):
    from trader_ml.release.job import TrainOptions, run_training

    store = LocalStore(tmp_path_factory.mktemp("quarter") / "store")
    ingest(SOURCE, store, dt.date(2007, 1, 1), TRAINED_THROUGH, today=TODAY, log=lambda _: None)
    out = str(tmp_path_factory.mktemp("o"))
    run_training(
        TrainOptions(store=store.url, epochs=1, force=True, progress=False, today=TODAY, output_dir=out),
        log=lambda _: None,
    )
    calendar = SOURCE.fetch(TRAINED_THROUGH, TRAINED_THROUGH + dt.timedelta(days=120)).closes.index
    days = [d.date().isoformat() for d in calendar if d.date() > TRAINED_THROUGH][:SERVED]
    model = Predictor(store, ttl_seconds=0)
    said = {}
    for i, day in enumerate(days):
        if i == BAD:
            prices = tmp_path_factory.mktemp("csv") / "prices.csv"
            bad_print_csv(prices, day)
            # csv brings the prices; the simulator only its yields and news tone
            said["ingest"] = cli(
                "ingest", "--source", "csv,synthetic", "--seed", "5", "--n-symbols", "8", "--prices", str(prices),
                "--store", store.url, "--start", day, "--end", day,
            )  # fmt: skip
        else:
            ingest(SOURCE, store, None, dt.date.fromisoformat(day), today=TODAY, log=lambda _: None)
        daily_answer(model, day, write=True)
    said["validate"] = cli("validate", "--store", store.url)
    said["predict"] = cli("predict", "--store", store.url)
    return store, days, said


def test_ingest_warns_naming_the_day_and_how_far_outside(quarter):
    _, days, said = quarter
    result = said["ingest"]
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: suspect day")]
    assert len(warnings) == 1 and re.match(rf"warning: suspect day {days[BAD]}: SPY return -38\.\d% is ", warnings[0])
    assert "times its 63-day volatility" in warnings[0] and "8 of 8 symbols moved over 8 times" in warnings[0]
    assert "1 suspect day(s) stored and marked" in result.stdout


def test_validate_lists_the_day_and_exits_non_zero(quarter):
    _, days, said = quarter
    result = said["validate"]
    assert result.returncode == 1
    assert f"suspect day {days[BAD]}: SPY return -38." in result.stderr and "(not accepted)" in result.stderr
    assert "--accept DAY" in result.stderr and "daily JSON: ok, " in result.stdout


def test_every_answer_whose_window_holds_the_day_names_it(quarter):
    store, days, said = quarter
    for i, day in enumerate(days):
        answer = json.loads(store.read(predictions_key(day)))
        for kind in ("regime", "health"):
            named = [d["date"] for d in answer["data_quality"][kind]["suspect_days"]]
            assert named == ([days[BAD]] if i >= BAD else []), (day, kind)
    printed = json.loads(said["predict"].stdout)
    assert printed["data_quality"]["regime"]["suspect_days"][0]["date"] == days[BAD]
    assert f"warning: the answer for {days[-1]} rests on regime: suspect day(s) {days[BAD]}" in said["predict"].stderr


def test_the_monitor_names_it(quarter):
    store, days, _ = quarter
    record = live_record(store, today=TODAY)
    assert [d["date"] for d in record["suspect_days"]] == [days[BAD]]
    outliers = {d["date"]: d for d in record["drift"]["regime"]["outlier_days"]}
    assert days[BAD] in outliers  # the day itself, many widths beyond training
    assert {v["column"] for v in outliers[days[BAD]]["values"]} >= {"spy_return_1d"}
    text = cli("monitor", "--store", store.url, "--no-write").stdout
    assert f"suspect day {days[BAD]} (not accepted" in text and f"outlier day {days[BAD]} (regime inputs)" in text


def test_reingesting_the_day_with_good_prices_clears_every_warning(quarter, tmp_path):
    store, days, _ = quarter
    repaired = copy_of(store, tmp_path / "repaired")
    result = cli(
        "ingest", "--source", "synthetic", "--seed", "5", "--n-symbols", "8", "--store", repaired.url,
        "--start", days[BAD], "--end", days[BAD],
    )  # fmt: skip
    assert result.returncode == 0 and "suspect" not in result.stderr
    result = cli("validate", "--store", repaired.url)
    assert result.returncode == 0 and "suspect" not in result.stdout + result.stderr
    answer = cli("predict", "--store", repaired.url)
    assert "suspect" not in answer.stderr
    assert json.loads(answer.stdout)["data_quality"]["regime"]["suspect_days"] == []
    assert live_record(repaired, today=TODAY)["suspect_days"] == []


def test_an_accepted_day_is_trained_on_and_validates(quarter, tmp_path):
    """Training leaves an unaccepted suspect day out, saying so; once accepted it reads it."""
    from trader_ml.data import suspect
    from trader_ml.data.partitions import read_table

    store, days, _ = quarter
    accepted = copy_of(store, tmp_path / "accepted")
    said: list[str] = []
    left = suspect.leave_out(accepted, read_table(accepted, "context"), said.append)
    assert pd.Timestamp(days[BAD]) not in set(left["date"]) and days[BAD] in said[0]
    result = cli("validate", "--store", accepted.url, "--accept", days[BAD])
    assert result.returncode == 0 and f"accepted {days[BAD]}" in result.stdout
    kept = suspect.leave_out(accepted, read_table(accepted, "context"), said.append)
    assert pd.Timestamp(days[BAD]) in set(kept["date"]) and len(said) == 1
    assert "(accepted " in cli("validate", "--store", accepted.url).stdout


@settings(max_examples=5, deadline=None, derandomize=True)
@given(stored=st.integers(min_value=0, max_value=SERVED + 5))
@example(stored=11)
@example(stored=20)
def test_the_monitor_never_raises_at_any_count_of_stored_days(quarter, stored):
    """--since at each count of stored days after it (the weeks after a first deployment among
    them): a record, never a traceback."""
    store, days, _ = quarter
    since = days[-stored] if 0 < stored <= SERVED else ("2026-11-01" if stored == 0 else "2009-01-02")
    result = cli("monitor", "--store", store.url, "--since", since, "--no-write", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["health"]["verdict"] and record["regime"]["verdict"]


def test_the_daily_command_ingests_answers_and_writes_the_day_once(quarter, tmp_path):
    """What the daily job runs: the next day ingested, answered by the trained models and written
    to predictions/; run again, nothing new is answered and nothing is rewritten."""
    store, days, _ = quarter
    local = copy_of(store, tmp_path / "daily")
    nxt = SOURCE.fetch(dt.date.fromisoformat(days[-1]), dt.date.fromisoformat(days[-1]) + dt.timedelta(days=10))
    day = next(d.date().isoformat() for d in nxt.closes.index if d.date().isoformat() > days[-1])
    args = ("daily", "--source", "synthetic", "--seed", "5", "--n-symbols", "8", "--store", local.url, "--end", day)
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    written = json.loads(local.read(predictions_key(day)))
    assert written["date"] == day and written["regime"]["model_source"] == "trained" and len(written["health"]) == 8
    assert f"answered {day}: " in result.stdout and f"date={day}/predictions.json" in result.stdout
    again = cli(*args)
    assert again.returncode == 0 and f"{day} was answered already" in again.stdout
    assert json.loads(local.read(predictions_key(day))) == written
