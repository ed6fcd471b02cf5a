"""monitor: a synthetic store served day by day through the real predictor for 120 trading days,
then scored; drift when the market moves after training and none when it does not."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from trader_ml import registry
from trader_ml.cli import main
from trader_ml.data.ingest import ingest
from trader_ml.data.partitions import encode_days, read_table
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.exposure import exposure
from trader_ml.monitor.record import live_record
from trader_ml.schema import LATEST_KEY, REGIMES, predictions_key
from trader_ml.serving.daily import stored_days
from trader_ml.serving.handler import daily_answer
from trader_ml.serving.predictor import Predictor
from trader_ml.store import LocalStore
from trader_ml.training.labels import health_targets

from .conftest import TODAY, copy_of

ROOT = Path(__file__).resolve().parents[1]
SERVED = 120


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Trained on 2007 .. mid-2010 (its last 120 days are in its test split, never trained on),
    then each of the last 120 days answered and written as the schedule does. On the way: day 30
    answered by the baselines (latest.json gone), day 45's answer lost, and from day 60 on a
    version trained with another seed serving."""
    from trader_ml.release.job import TrainOptions, run_training

    store = LocalStore(tmp_path_factory.mktemp("served") / "store")
    ingest(
        SyntheticSource(SyntheticParams(seed=3, n_symbols=8)),
        store,
        dt.date(2007, 1, 1),
        dt.date(2010, 6, 30),
        today=TODAY,
        log=lambda _: None,
    )
    options = TrainOptions(store=store.url, epochs=1, force=True, progress=False, today=TODAY)
    run_training(
        TrainOptions(**{**options.__dict__, "output_dir": str(tmp_path_factory.mktemp("o1"))}), log=lambda _: None
    )
    days = stored_days(store)[-SERVED:]
    first_version = registry.read_latest(store)[0]["version"]
    warm = Predictor(store, ttl_seconds=0)  # a warm container: it looks at latest.json before every answer
    for i, day in enumerate(days):
        if i == 60:  # a second version goes live mid-period
            second = TrainOptions(**{**options.__dict__, "seed": 1, "output_dir": str(tmp_path_factory.mktemp("o2"))})
            run_training(second, log=lambda _: None)
        if i == 30:
            kept = store.read(LATEST_KEY)
            store.delete(LATEST_KEY)
            daily_answer(Predictor(store), day, write=True)
            store.write(LATEST_KEY, kept)
            continue
        daily_answer(warm, day, write=True)
    store.delete(predictions_key(days[45]))
    return store, days, first_version


@pytest.fixture(scope="module")
def record(served):
    store, _, _ = served
    return live_record(store, today=TODAY)


def test_every_answer_whose_outcome_is_known_is_scored(served, record):
    store, days, _ = served
    answered = SERVED - 1  # day 45's file is gone
    assert record["answers"]["days"] == answered
    health = record["health"]
    # 8 symbols a day; the last 21 trading days have no known 21-day outcome yet
    assert health["answers"] == answered * 8
    assert health["pending"] == 21 * 8 and health["days_scored"] == answered - 21
    regime = record["regime"]
    assert regime["answers"] == answered and regime["pending"] == 1  # the last day's next return is not known
    assert regime["days_scored"] == answered - 1
    assert record["regime"]["labels"]["days"] == answered - 10  # labels read 10 days ahead


def test_a_hand_computed_day_agrees(served, record):
    store, days, _ = served
    features = read_table(store, "features")
    target, drawdown = health_targets(features)
    for day in (days[5], days[50], days[90]):
        answer = json.loads(store.read(predictions_key(day)))
        rows = features["date"] == pd.Timestamp(day)
        outcome = dict(zip(features.loc[rows, "symbol"], drawdown[rows.to_numpy()], strict=True))
        symbols = sorted(answer["health"])
        by_hand = spearmanr([answer["health"][s]["health_score"] for s in symbols], [outcome[s] for s in symbols])[0]
        assert record["health"]["daily_rank_correlation"][day] == pytest.approx(by_hand)
    context = read_table(store, "context")
    returns = dict(zip(context["date"].dt.strftime("%Y-%m-%d"), context["spy_return_1d"], strict=True))
    following = {
        d: n
        for d, n in zip(
            context["date"].dt.strftime("%Y-%m-%d"), context["date"].dt.strftime("%Y-%m-%d").shift(-1), strict=True
        )
    }
    equity, held = 1.0, 0.0
    for day in days[:3]:
        probs = json.loads(store.read(predictions_key(day)))["regime"]["regime_probs"]
        now = float(exposure(np.array([[probs[r] for r in REGIMES]]))[0])
        equity *= 1 + now * returns[following[day]] - abs(now - held) * 10 / 1e4
        held = now
    assert record["regime"]["equity"]["model"][2] == pytest.approx(equity, rel=1e-5)


def test_baseline_days_gaps_and_version_changes_are_counted(served, record):
    store, days, first_version = served
    counts = record["answers"]
    assert counts["baseline_days"] == {"regime": 1, "health": 1}
    assert counts["gaps"] == [days[45]]
    assert any("latest.json does not exist" in reason for reason in counts["fallback_reasons"])
    for kind in ("regime", "health"):
        changes = [c for c in counts["version_changes"] if c["model"] == kind]
        assert [c["date"] for c in changes] == [days[30], days[31], days[60]]  # to the baseline, back, new version
        assert sum(counts["versions"][kind].values()) == SERVED - 1 and len(counts["versions"][kind]) == 3
    assert first_version in counts["versions"]["health"]


def test_json_output_is_the_documented_record(served, capsys):
    store, _, _ = served
    assert main(["monitor", "--store", store.url, "--json", "--no-write"]) == 0
    printed = json.loads(capsys.readouterr().out)
    doc = (ROOT / "docs" / "monitoring.md").read_text()
    for key in printed:
        assert f"`{key}`" in doc, key
    for part in ("answers", "health", "regime", "drift"):
        for key in printed[part]:
            assert f"`{key}`" in doc, f"{part}.{key}"
    assert not store.exists("monitoring/latest.json")
    assert main(["monitor", "--store", store.url]) == 0
    text = capsys.readouterr().out
    assert "health verdict:" in text and "regime verdict:" in text and store.exists("monitoring/latest.json")


def scaled(store: LocalStore, tmp_path, days: int, factor: float) -> LocalStore:
    """A copy of ``store`` whose last ``days`` days have their volatility columns times ``factor``."""
    moved = copy_of(store, tmp_path / "moved")
    context, features = read_table(moved, "context"), read_table(moved, "features")
    since = sorted(context["date"].unique())[-days]
    late_c, late_f = context[context["date"] >= since].copy(), features[features["date"] >= since].copy()
    late_c["spy_vol_21d"] *= factor
    late_f[["vol_21d", "vol_63d"]] *= factor
    moved.write_many(encode_days("context", late_c) + encode_days("features", late_f))
    return moved


def test_tripled_volatility_flags_the_columns_that_moved_and_no_others(served, tmp_path):
    store, _, _ = served
    moved = scaled(store, tmp_path, 40, 3.0)
    drift = live_record(moved, today=TODAY, drift_days=40)["drift"]
    profile = registry.read_manifest(moved, registry.read_latest(moved)[0]["regime_model"].split("_v")[1][:-5])[
        "input_profile"
    ]
    late = read_table(moved, "features").groupby("date").tail(8).tail(40 * 8)
    low, high = profile["health"]["vol_63d"]["range"]
    assert ((late["vol_63d"] < low) | (late["vol_63d"] > high)).mean() > 0.5  # the move is real: beyond training
    assert drift["regime"]["flags"] == ["spy_vol_21d"]
    assert sorted(drift["health"]["flags"]) == ["vol_21d", "vol_63d"]
    outliers = {v["column"] for day in drift["regime"]["outlier_days"] for v in day["values"]}
    assert outliers <= {"spy_vol_21d"}  # whatever lies far beyond training is the column that moved


def test_an_unchanged_market_raises_no_drift(record, served):
    store, _, _ = served
    assert record["drift"]["regime"]["flags"] == [] and record["drift"]["health"]["flags"] == []
    assert live_record(store, today=TODAY, drift_days=40)["drift"]["health"]["flags"] == []
    assert record["drift"]["regime"]["went_missing"] == [] and record["drift"]["stale"]["flag"]  # 2010 data in 2026
    assert record["drift"]["regime"]["outlier_days"] == [] and record["drift"]["health"]["outlier_days"] == []
    assert record["suspect_days"] == []


def test_the_next_versions_report_and_manifest_show_the_live_record(served, tmp_path, capsys):
    from trader_ml.release.job import TrainOptions, run_training

    store, _, _ = served
    nxt = copy_of(store, tmp_path / "next")
    outcome = run_training(
        TrainOptions(
            store=nxt.url, epochs=1, force=True, seed=9, progress=False, today=TODAY, output_dir=str(tmp_path / "o")
        ),
        log=lambda _: None,
    )
    manifest = registry.read_manifest(nxt, outcome.version)
    assert manifest["champion_live_record"]["health"]["days_scored"] > 0
    assert "equity" not in manifest["champion_live_record"]["regime"]  # the series live in the report
    page = nxt.read(registry.report_key(outcome.version)).decode()
    section = page.split("Live record of the outgoing champion", 1)[1]
    assert "health verdict:" in section and section.count('src="data:image/png;base64,') == 2
    assert main(["monitor", "--store", nxt.url]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--store", nxt.url]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"health (in line|WORSE|too few days|no expectation)", listing), listing


def test_the_lambda_logs_one_json_line_per_invocation(served, monkeypatch, caplog):
    from trader_ml.serving import handler

    store, days, _ = served
    monkeypatch.setattr(handler, "_predictor", Predictor(store))
    monkeypatch.setattr(handler, "write_predictions", lambda store, answer: "not written")
    caplog.set_level("INFO", logger="trader_ml.serving")
    day = handler.load_day(store, days[-1])
    calm = handler.handler({"context_rows": day.context_rows, "feature_rows": day.feature_rows})
    wild = [dict(r, vol_21d=15.0) for r in day.feature_rows]  # plausible for ingest, far beyond training
    handler.handler({"context_rows": day.context_rows, "feature_rows": wild})
    handler.handler({"hello": 1})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith('{"event"')]
    assert len(lines) == 3 and calm["ok"]
    assert lines[0]["drift_flags"] == [] and lines[0]["fallback"] is False and lines[0]["regime_source"] == "trained"
    assert lines[1]["drift_flags"] == ["vol_21d"] and lines[1]["drift_count"] == 1
    assert lines[2]["ok"] is False and "unrecognised event" in lines[2]["error"]
    template = (ROOT / "deploy" / "template.yaml").read_text()
    for field in ("$.event", "$.fallback", "$.drift_count"):  # what the metric filters read
        assert field in template and field[2:] in lines[0]


def rewrite_answers(store: LocalStore, days: list[str], change) -> None:
    """Each stored answer of ``days`` passed through ``change(day, answer)`` and written back."""
    for day in days:
        key = predictions_key(day)
        if store.exists(key):
            answer = json.loads(store.read(key))
            change(day, answer)
            store.write(key, json.dumps(answer).encode())


def promise(store: LocalStore, name: str, last_date: str, sharpe: float) -> None:
    """A regime backtest summary in ``store`` whose data ends on ``last_date``."""
    summary = {
        "kind": "regime",
        "config": {"model_type": "gru"},
        "data": {"last_date": last_date},
        "rows": {"gru": {"performance": {"sharpe": sharpe}}},
    }
    store.write(f"backtests/{name}/summary.json", json.dumps(summary).encode())


def test_a_model_worse_than_its_baselines_over_the_live_days_is_called_so(served, tmp_path):
    """Health answers that rank the assets backwards, and regime answers fully invested exactly
    on the days before a fall: over the same live days both lose to what they would replace,
    and the verdicts say so with the differences' intervals, whatever was promised."""
    store, days, _ = served
    bad = copy_of(store, tmp_path / "bad")
    features = read_table(bad, "features")
    _, drawdown = health_targets(features)
    keys = zip(features["date"].dt.strftime("%Y-%m-%d"), features["symbol"], strict=True)
    worst_first = dict(zip(keys, drawdown, strict=True))
    context = read_table(bad, "context")
    dates = context["date"].dt.strftime("%Y-%m-%d").tolist()
    next_return = dict(zip(dates[:-1], context["spy_return_1d"].to_numpy()[1:], strict=True))

    def backwards(day, answer):
        for symbol, health in answer["health"].items():
            known = worst_first.get((day, symbol))
            if known is not None and np.isfinite(known):
                health["health_score"] = float(np.clip(0.5 - 5 * known, 0.0, 1.0))  # deepest drawdown: healthiest
        falls = next_return.get(day, 0.0) < 0
        answer["regime"]["regime_probs"] = {
            r: float(r == ("calm_uptrend" if falls else "high_vol_panic")) for r in REGIMES
        }

    rewrite_answers(bad, days, backwards)
    promise(bad, "regime-promise", "2009-06-30", -5.0)  # a promise any model keeps: the baselines judge
    record = live_record(bad, today=TODAY)
    health, regime = record["health"], record["regime"]
    assert health["verdict"].startswith("worse than the baseline on log loss")
    assert health["vs_baseline"]["log_loss"]["interval"][0] > 0
    assert health["vs_baseline"]["rank_correlation"]["interval"][1] < 0
    assert regime["days_scored"] >= 63 and regime["expected"]["sharpe"] == -5.0
    assert regime["verdict"].startswith("worse than buy-and-hold (Sharpe ")
    assert "the baseline (Sharpe" in regime["verdict"]
    assert regime["vs"]["buy_and_hold"]["interval"][1] < 0 and regime["vs"]["rules"]["interval"][1] < 0
    text = main_text(bad)
    assert "health verdict: worse than the baseline" in text and "regime verdict: worse than buy-and-hold" in text


def test_a_promise_is_kept_only_from_a_backtest_that_ends_before_the_live_days(served, tmp_path):
    """The served answers as they are, against two backtests: one whose data ends before the
    first live day promising a Sharpe of 9 (no model keeps it), and a newer one that reaches
    into the live days promising -9. The newer one is not used, and says why."""
    store, days, _ = served
    judged = copy_of(store, tmp_path / "judged")
    promise(judged, "old", "2009-12-31", 9.0)
    promise(judged, "overlapping", days[5], -9.0)
    regime = live_record(judged, today=TODAY)["regime"]
    assert regime["expected"]["sharpe"] == 9.0 and regime["expected"]["sharpe_from"] == "backtests/old/summary.json"
    assert "backtests/overlapping/summary.json" in regime["expected"]["backtest_not_used"]
    assert regime["verdict"].startswith("worse than")  # held to 9.0, or losing to a row it replaces: never in line


def test_live_macro_f1_counts_regimes_called_that_never_happened(served, tmp_path):
    """Every answer a confident panic in a period the labels call otherwise: the F1 averages the
    panic class's zero with the others, as scikit-learn's default does."""
    from sklearn.metrics import f1_score

    from trader_ml.monitor.answers import read_answers
    from trader_ml.monitor.live import label_agreement
    from trader_ml.training.labeller import hindsight_labels

    store, days, _ = served
    panic = copy_of(store, tmp_path / "panic")
    rewrite_answers(
        panic, days, lambda day, a: a["regime"].update(regime_probs={r: float(r == "high_vol_panic") for r in REGIMES})
    )
    context = read_table(panic, "context")
    answers = read_answers(panic).regime
    agreement = label_agreement(answers, context, None)
    labels = hindsight_labels(context, None)
    at = pd.Series(np.arange(len(context)), index=context["date"]).reindex(answers["date"]).to_numpy()
    truth = labels[at[labels[at] >= 0]]
    panic_index = REGIMES.index("high_vol_panic")
    called = np.full(len(truth), panic_index)
    assert agreement["days"] == len(truth) > 0
    assert agreement["f1_macro"] == pytest.approx(f1_score(truth, called, average="macro", zero_division=0))
    if (truth != panic_index).any():
        assert agreement["f1_macro"] < 0.5


def main_text(store: LocalStore) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["monitor", "--store", store.url, "--no-write"]) == 0
    return out.getvalue()


def test_a_half_damaged_day_is_listed_and_not_scored(served, tmp_path):
    """A day whose regime answer reads but one of whose health answers does not is damaged as a
    whole: listed once with the reason, in neither frame."""
    from trader_ml.monitor.answers import read_answers

    store, days, _ = served
    damaged = copy_of(store, tmp_path / "damaged")
    day = days[10]

    def break_one_symbol(_, answer):
        answer["health"][sorted(answer["health"])[0]]["health_score"] = "not a number"

    rewrite_answers(damaged, [day], break_one_symbol)
    answers = read_answers(damaged)
    assert day in answers.damaged and "health_score: expected a number, found str" in answers.damaged[day]
    assert pd.Timestamp(day) not in set(answers.regime["date"]) and pd.Timestamp(day) not in set(answers.health["date"])
    assert len(answers.regime) == SERVED - 2  # day 45 lost, day 10 damaged


def test_staleness_counts_exchange_sessions_not_weekdays():
    """Ingested through the Wednesday before Thanksgiving 2026, looked at the next Wednesday: four
    weekdays behind but three sessions (Thanksgiving is a holiday), so not stale; a day later it is."""
    from trader_ml.monitor.live import stale

    assert stale("2026-11-25", dt.date(2026, 12, 2)) == {
        "last_ingested_day": "2026-11-25",
        "business_days_behind": 3,
        "flag": False,
    }
    assert stale("2026-11-25", dt.date(2026, 12, 3))["flag"]
    assert stale("2026-12-31", dt.date(2027, 1, 4))["business_days_behind"] == 0  # New Year's Day, then a weekend
    assert stale(None, dt.date(2026, 12, 2))["flag"]


def test_the_served_portfolio_is_scored_and_a_bad_one_called_so(record, served, tmp_path):
    """The served targets held by the policy's code next to equal weights and inverse volatility x
    variance targeting; targets put wholly on each day's worst next-day stock lose, and the
    verdict says so with the interval."""
    store, days, _ = served
    portfolio = record["portfolio"]
    assert portfolio["days"] >= 63 and {"models", "equal_weight", "inverse_vol_x_vt"} <= set(portfolio)
    for gap in portfolio["vs"].values():
        assert gap["interval"][0] <= gap["interval"][1]
    features = read_table(store, "features")
    trading = sorted(features["date"].dt.strftime("%Y-%m-%d").unique())
    following = dict(zip(trading[:-1], trading[1:], strict=True))
    by_day = {
        d: g.set_index("symbol")["return_1d"] for d, g in features.groupby(features["date"].dt.strftime("%Y-%m-%d"))
    }

    def worst(day, answer):
        nxt = by_day.get(following.get(day, ""), pd.Series(dtype=float))
        if len(nxt):
            answer["portfolio"]["weights"] = {str(nxt.idxmin()): 1.0}

    bad = copy_of(store, tmp_path / "bad")
    rewrite_answers(bad, days, worst)
    verdict = live_record(bad, today=TODAY)["portfolio"]["verdict"]
    assert verdict.startswith("worse than equal_weight (Sharpe ")
    assert "portfolio verdict: worse than" in main_text(bad)
