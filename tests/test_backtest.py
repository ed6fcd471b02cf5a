"""backtest: walk-forward refits, causal answers, the reference rows, the allocation, resuming,
and the same refits on worker processes and on a local Ray head (127.0.0.1 only)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader_ml.backtest import BacktestConfig, run_backtest
from trader_ml.backtest.allocation import performance
from trader_ml.backtest.config import periods
from trader_ml.backtest.health_stats import daily_measures
from trader_ml.backtest.references import forward_filter, hmm_regime_probs, jump_regime_probs, oracle_regime_probs
from trader_ml.backtest.runner import make_jobs
from trader_ml.cli import main
from trader_ml.data.ingest import ingest
from trader_ml.data.partitions import read_table
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.errors import TraderMLError
from trader_ml.exposure import exposure, strategy_returns
from trader_ml.store import LocalStore

from .conftest import TODAY, _free_port, store_snapshot

QUIET = {"log": lambda _: None, "progress": False}


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> LocalStore:
    """Four simulated years, 6 stocks: two yearly refits of test days after two years of history."""
    store = LocalStore(tmp_path_factory.mktemp("history"))
    source = SyntheticSource(SyntheticParams(seed=2, n_symbols=6))
    ingest(source, store, dt.date(2000, 1, 1), dt.date(2003, 12, 31), today=TODAY, log=lambda _: None)
    return store


def fresh_copy(store: LocalStore, tmp_path) -> LocalStore:
    """The same data in a new store, without its cached refits."""
    copy = LocalStore(tmp_path / "copy")
    copy.write_many((k, store.read(k)) for k in store.list("data/") + store.list("truth/"))
    return copy


def config(**overrides) -> BacktestConfig:
    settings = {"start": dt.date(2002, 1, 1), "epochs": 1, "workers": 1}
    return BacktestConfig(**{**settings, **overrides})


# --- allocation -----------------------------------------------------------------------------


def test_allocation_matches_a_hand_computed_ten_day_case():
    calm, on, off, choppy, panic = np.eye(5)
    probs = np.array([on, on, 0.5 * on + 0.5 * off, off, choppy, choppy, calm, panic, panic, on])
    market = np.array([0.01, -0.02, 0.03, -0.01, 0.02, 0.00, 0.01, -0.05, 0.02, 0.01])
    held = exposure(probs)
    np.testing.assert_allclose(held, [1, 1, 0.5, 0, 0.5, 0.5, 1, 0, 0, 1])
    # exposure x return, less 10 bp per unit changed (from cash before day 1)
    by_hand = [
        0.01 - 0.001,
        -0.02,
        0.5 * 0.03 - 0.0005,
        0 - 0.0005,
        0.5 * 0.02 - 0.0005,
        0.0,
        0.01 - 0.0005,
        0 - 0.001,
        0.0,
        0.01 - 0.001,
    ]
    returns = strategy_returns(held, market, cost_bp=10)
    np.testing.assert_allclose(returns, by_hand, atol=1e-15)
    stats = performance(returns, held)
    equity = np.cumprod(1 + np.array(by_hand))
    assert stats["annual_return"] == pytest.approx(equity[-1] ** (252 / 10) - 1)
    assert stats["sharpe"] == pytest.approx(np.mean(by_hand) / np.std(by_hand, ddof=1) * np.sqrt(252))
    assert stats["max_drawdown"] == pytest.approx(min(equity / np.maximum.accumulate(equity)) - 1)
    # changes above 0.25: 1->0.5, 0.5->0, 0->0.5, 0.5->1, 1->0, 0->1 (day one's entry is not a change)
    assert stats["exposure_changes_per_year"] == pytest.approx(6 / (10 / 252))
    assert stats["mean_exposure"] == pytest.approx(0.55)


def test_daily_measures_by_hand():
    dates = np.repeat(np.array(["2020-01-02", "2020-01-03"], dtype="datetime64[ns]"), 5)
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1, 0.2, 0.3, 0.4, 0.5])
    drawdown = np.array([-0.01, -0.02, -0.03, -0.04, -0.05, -0.01, -0.02, -0.03, -0.04, -0.05])
    target = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1, 0], dtype=float)
    out = daily_measures(dates, score, drawdown, target, probability=True)
    np.testing.assert_allclose(out["spearman"], [1.0, -1.0])
    np.testing.assert_allclose(out["auc"], [1.0, 0.0])
    np.testing.assert_allclose(
        out["brier"], [np.mean((score[:5] - target[:5]) ** 2), np.mean((score[5:] - target[5:]) ** 2)]
    )


# --- reference rows -------------------------------------------------------------------------


def test_forward_filter_matches_the_log_space_recursion():
    from scipy.special import logsumexp

    rng = np.random.default_rng(3)
    log_emission = rng.normal(0.0, 30.0, (200, 3))  # wide: emissions far below the day's best
    log_emission[50, :2] = -1e4  # a day on which the likely states all but vanish
    transition = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.2, 0.8]])  # a move never made
    with np.errstate(divide="ignore"):
        log_transition, log_start = np.log(transition), np.log(np.array([1.0, 0.0, 0.0]))
    alpha = log_start + log_emission[0]
    expected = [alpha - logsumexp(alpha)]
    for t in range(1, len(log_emission)):
        alpha = logsumexp(expected[-1][:, None] + log_transition, axis=0) + log_emission[t]
        expected.append(alpha - logsumexp(alpha))
    np.testing.assert_allclose(forward_filter(log_emission, log_transition, log_start), np.exp(expected), atol=1e-9)


def test_hmm_and_jump_model_rows_are_reproducible_with_a_fixed_seed(history):
    r = read_table(history, "context")["spy_return_1d"].to_numpy()
    for fit in (hmm_regime_probs, jump_regime_probs):
        first, again = fit(r, 500, seed=3), fit(r, 500, seed=3)
        np.testing.assert_array_equal(first, again)
        assert np.allclose(first[np.isfinite(first).all(axis=1)].sum(axis=1), 1.0)


@pytest.mark.parametrize("fit", [hmm_regime_probs, jump_regime_probs])
def test_reference_rows_are_causal(history, fit):
    r = read_table(history, "context")["spy_return_1d"].to_numpy()
    short, long = fit(r[:700], 500, seed=0), fit(r, 500, seed=0)
    np.testing.assert_allclose(short, long[:700])


def test_oracle_is_causal_and_beats_chance_on_the_truth(history):
    context = read_table(history, "context")
    truth = read_table(history, "truth_regime")
    y = truth["regime"].map(
        {r: i for i, r in enumerate(("calm_uptrend", "risk_on_trend", "risk_off_trend", "choppy", "high_vol_panic"))}
    )
    y = (
        pd.Series(y.to_numpy(), index=pd.DatetimeIndex(truth["date"]))
        .reindex(pd.DatetimeIndex(context["date"]))
        .to_numpy()
    )
    values = context.drop(columns="date").to_numpy(dtype=float)
    probs = oracle_regime_probs(values, y, 500)
    np.testing.assert_allclose(oracle_regime_probs(values[:700], y[:700], 500), probs[:700])
    assert (probs[500:].argmax(axis=1) == y[500:]).mean() > 0.4  # five regimes: chance is about 0.2


# --- the walk-forward backtest --------------------------------------------------------------


def test_a_refit_never_sees_a_row_dated_on_or_after_its_refit_date(history):
    for table, model in (("context", "regime"), ("features", "health")):
        frame = read_table(history, table)
        days = pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(frame["date"])))
        for window_days in (None, 400):
            plan = periods(days, config(model=model, refit="quarterly", window_days=window_days), "here")
            jobs = make_jobs(config(model=model), frame, days, plan)
            assert len(jobs) == len(plan) == 8
            for (i, _), job in jobs.items():
                dates = pd.DatetimeIndex(job.rows["date"])
                assert dates.max() < plan[i].refit_date <= days[plan[i].first]
                assert dates.max() == days[plan[i].first - 1]  # and every earlier day is there
                if window_days:
                    assert dates.min() >= plan[i].refit_date - pd.Timedelta(days=window_days)


@pytest.fixture(scope="module")
def regime_run(history):
    return run_backtest(config(), history, **QUIET)


def test_regime_backtest_writes_every_row_and_the_page(regime_run, history):
    summary = regime_run.summary
    assert set(summary["rows"]) == {
        "gru",
        "rules",
        "buy_and_hold",
        "hmm",
        "jump_model",
        "oracle",
        "variance_target",
        "trend_200d",
        "variance_target_x_trend",
        "gru_vt_prior",
    }
    assert summary["model_row"] == "gru" and summary["rows"]["gru"]["vs_model"]["sharpe_interval"] == [0.0, 0.0]
    prior = summary["rows"]["gru_vt_prior"]["vs_variance_target"]  # judged against the rule it corrects
    assert prior["sharpe_interval"][0] <= prior["sharpe_interval"][1] and np.isfinite(prior["sharpe_difference"])
    for row in summary["rows"].values():  # every row next to the model, with an interval around the difference
        vs = row["vs_model"]
        for metric in ("sharpe", "max_drawdown"):
            low, high = vs[f"{metric}_interval"]
            assert np.isfinite([low, high, vs[f"{metric}_difference"]]).all() and low <= high
    assert [r["refit_date"] for r in summary["refits"]] == ["2002-01-01", "2003-01-01"]
    for refit in summary["refits"]:
        assert refit["seeds"][0]["trained_through"] < refit["refit_date"]
    for name, row in summary["rows"].items():
        assert row["performance"]["days"] == summary["test_days"] == len(regime_run.predictions)
        assert -1 <= row["performance"]["max_drawdown"] <= 0
        assert (row["vs_truth"] is None) == (
            name in ("buy_and_hold", "variance_target", "trend_200d", "variance_target_x_trend", "gru_vt_prior")
        )
        assert set(row["by_year"]) == {2002, 2003}
    assert summary["rows"]["buy_and_hold"]["performance"]["mean_exposure"] == 1.0
    stored = json.loads(history.read(f"{regime_run.key}summary.json"))
    assert stored["rows"]["gru"]["performance"] == pytest.approx(summary["rows"]["gru"]["performance"])
    page = history.read(f"{regime_run.key}index.html").decode()
    assert (
        page.count("data:image/png;base64,") == 4
        and "jump_model" in page
        and "variance_target" in page
        and "http" not in page.split("<body>")[1]
    )
    frame = pd.read_parquet(__import__("io").BytesIO(history.read(f"{regime_run.key}predictions.parquet")))
    assert (pd.DatetimeIndex(frame["as_of"]) < pd.DatetimeIndex(frame["date"])).all()


def test_the_backtest_answers_as_the_served_model_would(regime_run, history):
    """The model row's answer for a day is what the exported artifact says through the serving
    predictor for the context rows up to the day before."""
    from trader_ml.backtest.refit import load_cached
    from trader_ml.serving.artifacts import RegimeModel

    context = read_table(history, "context")
    frame = regime_run.predictions
    day = frame.iloc[40]
    rows = context[pd.DatetimeIndex(context["date"]) <= day["as_of"]].drop(columns="date").to_dict("records")
    (job,) = [
        j
        for (i, _), j in make_jobs(
            config(),
            context,
            pd.DatetimeIndex(context["date"]),
            periods(pd.DatetimeIndex(context["date"]), config(), ""),
        ).items()
        if i == 0
    ]
    model = RegimeModel.from_bytes(load_cached(history, job)[0])
    answer = model.predict(rows)
    got = [day[f"gru_p_{k}"] for k in answer["regime_probs"]]
    np.testing.assert_allclose(got, list(answer["regime_probs"].values()), atol=1e-6)


def test_a_day_s_answer_does_not_change_when_later_days_are_appended(regime_run, history, tmp_path):
    shorter = run_backtest(config(end=dt.date(2003, 6, 30)), history, **QUIET)
    assert shorter.refits_cached == 2 and shorter.refits_fitted == 0  # same training rows: same refits
    a = shorter.predictions
    b = regime_run.predictions.iloc[: len(a)]
    assert (a["date"].to_numpy() == b["date"].to_numpy()).all()
    answers = [c for c in a.columns if c.endswith(("_p_calm_uptrend", "_p_high_vol_panic", "_exposure"))]
    np.testing.assert_allclose(a[answers].to_numpy(dtype=float), b[answers].to_numpy(dtype=float))


def test_a_killed_backtest_resumes_without_refitting_finished_windows(history, tmp_path):
    store = fresh_copy(history, tmp_path)

    def die_after_first(done: int) -> None:
        if done == 1:
            raise KeyboardInterrupt  # as a kill would, right after the first refit was cached

    with pytest.raises(KeyboardInterrupt):
        run_backtest(config(refit="quarterly", end=dt.date(2002, 9, 30)), store, after_each=die_after_first, **QUIET)
    assert not store.list("backtests/regime")  # no results from a run that did not finish
    resumed = run_backtest(config(refit="quarterly", end=dt.date(2002, 9, 30)), store, **QUIET)
    assert (resumed.refits_cached, resumed.refits_fitted) == (1, 2)


def test_parallel_workers_give_the_same_numbers(regime_run, history, tmp_path):
    parallel = run_backtest(config(workers=2), fresh_copy(history, tmp_path), **QUIET)
    assert parallel.refits_fitted == 2
    for name, row in regime_run.summary["rows"].items():
        assert parallel.summary["rows"][name]["performance"] == pytest.approx(row["performance"])


RAY = Path(sys.executable).with_name("ray")
# Ray swaps 127.0.0.1 for the machine's own address unless told it is not forming a cluster
# across machines; with this every Ray process binds the loopback interface only.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def ray_head():
    """A head node in its own process group: ``--block`` keeps ``ray start`` in the foreground
    with the head's processes as its children, so killing the group stops all of them at once
    (``ray stop`` takes seconds to do the same)."""
    port = _free_port()
    temp = f"/tmp/ray-{uuid.uuid4().hex[:8]}"  # Ray's socket paths must stay short
    start = [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}"]
    start += ["--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    env = {**os.environ, **LOOPBACK}
    head = subprocess.Popen(
        start, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    # The head says when it is up and then blocks; its output is read to the end on a thread, so
    # neither a head that never comes up nor a full pipe can hang the suite.
    seen: list[str] = []
    settled = threading.Event()  # the head is up, or its output ended without saying so

    def read() -> None:
        for line in head.stdout:
            seen.append(line)
            if "Ray runtime started" in line:
                settled.set()
        settled.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not (settled.wait(120) and any("Ray runtime started" in line for line in seen)):
            pytest.fail("ray start --head did not come up within 120 s:\n" + "".join(seen[-20:]))
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(30)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_gives_the_local_numbers(regime_run, ray_head, history, tmp_path, monkeypatch):
    """``backtest --ray`` as typed, against the in-process run of the same settings (config())."""
    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)
    clustered = fresh_copy(history, tmp_path)
    command = ["backtest", "--store", clustered.url, "--quiet", "--ray", ray_head, "--start", "2002-01-01"]
    assert main([*command, "--epochs", "1"]) == 0
    (key,) = [k for k in clustered.list("backtests/regime") if k.endswith("summary.json")]
    remote = json.loads(clustered.read(key))
    assert remote["timing"]["refits_fitted"] == regime_run.refits_fitted == 2
    for name, row in regime_run.summary["rows"].items():
        assert remote["rows"][name]["performance"] == pytest.approx(row["performance"], rel=1e-12), name
    assert [s["seeds"][0]["epochs_run"] for s in remote["refits"]] == [1, 1]  # --epochs reached the tasks


def test_health_backtest_rows(history):
    result = run_backtest(config(model="health", model_type="vae"), history, **QUIET)
    rows = result.summary["rows"]
    references = ("base rate", "calibrated heuristic", "calibrated -vol_63d", "calibrated -vol_21d")
    assert set(rows) == {"vae", "heuristic", "-vol_63d", "-vol_21d", *references}
    for name, row in rows.items():
        probability = name in ("vae", "heuristic", *references)
        ranks = name != "base rate"  # one probability a day: no ranking to judge
        if ranks:
            assert -1 <= row["spearman"]["mean"] <= 1 and row["spearman"]["se"] > 0
            assert 0 <= row["auc"]["mean"] <= 1
        assert ("brier" in row) == ("log_loss" in row) == probability
        assert "truth_spearman" in row
        if name != "vae":  # every other row: the model's difference from it, with an interval
            for measure, gap in row["model_minus"].items():
                low, high = gap["interval"]
                assert low <= gap["difference"] <= high, (name, measure)
            judged = {"log_loss", "brier"} if probability else set()
            assert set(row["model_minus"]) == judged | ({"spearman"} if ranks else set())
    assert "model_minus" not in rows["vae"]
    # The base rate says one probability a refit: the training rows' share of healthy outcomes
    # (with the same names every day, the same share the test days have).
    base_rate = result.predictions["score base rate"]
    assert base_rate.nunique() <= len(result.summary["refits"])
    assert base_rate.to_numpy() == pytest.approx(result.predictions["target"].mean(), abs=1e-6)
    assert "spearman_minus_-vol_63d" in rows["vae"] and "spearman_minus_-vol_63d" not in rows["-vol_63d"]
    assert result.summary["test_rows"] == len(result.predictions)


@pytest.fixture(scope="module")
def bad_input_store(history, tmp_path_factory) -> LocalStore:
    """One copy for every bad-input case: each checks that its own call left it as it was."""
    return fresh_copy(history, tmp_path_factory.mktemp("bad-input"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": dt.date(2003, 1, 1), "end": dt.date(2002, 1, 1)}, "--start 2003-01-01 is after --end 2002-01-01"),
        ({"start": dt.date(2010, 1, 1)}, "no trading days from 2010-01-01 on"),
        ({"start": dt.date(2002, 1, 5), "end": dt.date(2002, 1, 6)}, "no trading days between 2002-01-05"),
        ({"start": dt.date(2000, 6, 1)}, "the refit of 2000-06-01 has"),
        ({"window_days": 60}, "choose a later --start or a longer --window-days"),
        ({"model": "health", "model_type": "gru"}, "--model-type gru is not a health model"),
    ],
)
def test_bad_input_is_one_line_and_nothing_written(bad_input_store, overrides, message):
    store = bad_input_store
    before = store_snapshot(store)
    with pytest.raises(TraderMLError, match=message.replace("-", "\\-")):
        run_backtest(config(**overrides), store, **QUIET)
    assert store_snapshot(store) == before


def test_features_without_later_rows_cannot_be_judged(history, tmp_path):
    path = tmp_path / "features.parquet"
    features = read_table(history, "features")
    features[features["date"] <= "2002-01-10"].to_parquet(path)
    with pytest.raises(TraderMLError, match="no test row has a known 21-day outcome"):
        run_backtest(
            config(model="health", start=dt.date(2002, 1, 1)), LocalStore(tmp_path / "s"), data=str(path), **QUIET
        )
    assert not (tmp_path / "s").exists()


def test_backtest_command(history, tmp_path, capsys):
    store = fresh_copy(history, tmp_path)
    code = main(
        ["backtest", "--store", store.url, "--start", "2003-01-01", "--epochs", "1", "--workers", "1", "--quiet"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Sharpe" in out and "jump_model" in out and "results:" in out
    assert any(k.endswith("index.html") for k in store.list("backtests/"))
    code = main(["backtest", "--store", store.url, "--start", "2003-01-01", "--end", "2002-01-01"])
    assert code == 2 and "is after --end" in capsys.readouterr().err


def test_nothing_but_the_cluster_module_imports_ray():
    import pathlib
    import re

    src = pathlib.Path(__file__).resolve().parents[1] / "src" / "trader_ml"
    importers = [
        p.relative_to(src).as_posix()
        for p in src.rglob("*.py")
        if re.search(r"^\s*(import ray|from ray\b)", p.read_text(), re.MULTILINE)
    ]
    assert importers == ["backtest/cluster.py"]


def test_variance_targeting_by_hand_over_ten_days():
    """exposure = min(1, (target / vol)^2): vol the annualised root of the EWM (half-life 21) of
    squared daily log returns through the day, target the median of vol over all days before."""
    from trader_ml.backtest.risk_rules import variance_target_exposure

    r = np.array([0.01, -0.02, 0.005, 0.03, -0.04, 0.0, 0.012, -0.007, 0.02, -0.01])
    alpha = 1 - 0.5 ** (1 / 21)
    weights_sum, weighted, vols = 0.0, 0.0, []
    for x in np.log1p(r):  # pandas' adjusted EWM: day i weighs (1 - alpha)^(t - i) on day t
        weighted = weighted * (1 - alpha) + x * x
        weights_sum = weights_sum * (1 - alpha) + 1.0
        vols.append(np.sqrt(weighted / weights_sum * 252))
    expected = [1.0] + [min(1.0, (np.median(vols[:t]) / vols[t]) ** 2) for t in range(1, 10)]
    assert variance_target_exposure(r) == pytest.approx(expected)
    assert expected[4] < 1.0 and expected[1] < 1.0  # a bigger move than before cuts the exposure


def test_the_risk_budget_by_hand_and_a_model_that_knows_nothing_earns_variance_targeting():
    """exposure = clip(min(1, (target / vol)^2) x (1 + strength (view - center)), 0, 1), vol the
    annualised EWM (half-life 21) of the last 252 squared log returns."""
    from trader_ml.exposure import EXPOSURE_WEIGHTS, prior_exposure, risk_budget, window_vols

    r = np.array([0.01, -0.02, 0.005, 0.03, -0.04, 0.0, 0.012, -0.007, 0.02, -0.01])
    logs = np.log1p(r)
    vols = window_vols(r)
    for t in (0, 4, 9):
        w = 0.5 ** (np.arange(t, -1, -1) / 21)  # day t weighs 1, day t - k weighs 0.5^(k/21)
        assert vols[t] == pytest.approx(np.sqrt(252 * (w * logs[: t + 1] ** 2).sum() / w.sum()))
    prior = {"vol_target": 0.2, "center": 0.6, "strength": 1.0}
    panic, calm = np.eye(5)[[4]], np.eye(5)[[0]]
    vt = min(1.0, (0.2 / vols[4]) ** 2)
    assert risk_budget(vols[[4]], panic, prior)[0] == pytest.approx(vt * (1 - 0.6))
    assert risk_budget(vols[[4]], calm, prior)[0] == pytest.approx(min(1.0, vt * 1.4))
    mix = np.array([[0.3, 0.3, 0.1, 0.2, 0.1]])  # the training labels' mix: its view is the center
    prior["center"] = float(mix[0] @ EXPOSURE_WEIGHTS)
    assert risk_budget(vols, np.repeat(mix, 10, axis=0), prior) == pytest.approx(prior_exposure(vols, 0.2))
    long = np.random.default_rng(0).normal(0, 0.01, 600)  # serving reads the last 287 days: same number
    assert window_vols(long[-287:])[-1] == pytest.approx(window_vols(long)[-1], rel=1e-12)


def test_the_trend_rule_is_in_above_its_200_day_mean_and_reads_no_later_day():
    from trader_ml.backtest.risk_rules import rule_exposures, trend_exposure

    r = np.r_[np.full(250, 0.001), np.full(60, -0.01), np.full(100, 0.004)]
    held = trend_exposure(r)
    assert (held[:199] == 1).all() and held[249] == 1 and held[300] == 0
    for cut in (210, 280, 330):  # a day's exposure is the same whatever follows it
        for name, full in rule_exposures(r).items():
            assert rule_exposures(r[: cut + 1])[name][cut] == pytest.approx(full[cut]), name


def test_a_row_against_itself_has_the_interval_zero():
    from trader_ml.stats import against_model

    r = np.random.default_rng(0).normal(0.0003, 0.01, 500)
    assert against_model(r, r) == {
        "sharpe_difference": 0.0,
        "sharpe_interval": [0.0, 0.0],
        "max_drawdown_difference": 0.0,
        "max_drawdown_interval": [0.0, 0.0],
    }
    worse = against_model(r, r - 0.002)  # the other row loses 20 bp a day: the model is clearly ahead
    assert worse["sharpe_interval"][0] > 0 and worse["max_drawdown_interval"][0] > 0


def test_several_markets_in_one_run_are_each_reported_then_pooled(history, tmp_path, capsys):
    """Two markets (the same history, the second with its returns shifted down 2 bp a day):
    each gets its own results, and the pooled rows are the two markets' days end to end."""
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    context = read_table(history, "context")
    context.to_parquet(first)
    shifted = context.copy()
    shifted["spy_return_1d"] = shifted["spy_return_1d"] - 0.0002
    shifted.to_parquet(second)
    store = LocalStore(tmp_path / "results")
    args = ["backtest", "--store", store.url, "--start", "2003-01-01", "--epochs", "1", "--workers", "1", "--quiet"]
    assert main([*args, "--data", str(first), "--data", str(second)]) == 0
    out = capsys.readouterr().out
    assert out.count("results:") == 2 and "pooled over 2 markets" in out
    (key,) = [k for k in store.list("backtests/pooled-") if k.endswith("summary.json")]
    pooled = json.loads(store.read(key))
    singles = [json.loads(store.read(m["key"] + "summary.json")) for m in pooled["markets"]]
    assert pooled["test_days"] == sum(s["test_days"] for s in singles)
    frames = [
        pd.read_parquet(__import__("io").BytesIO(store.read(m["key"] + "predictions.parquet")))
        for m in pooled["markets"]
    ]
    both = np.concatenate([f["buy_and_hold_return"].to_numpy() for f in frames])
    assert pooled["rows"]["buy_and_hold"]["performance"]["sharpe"] == pytest.approx(
        both.mean() / both.std(ddof=1) * np.sqrt(252)
    )
    assert pooled["rows"]["gru"]["vs_model"]["sharpe_interval"] == [0.0, 0.0]


class _HeldBack:
    """A store whose writes of one key wait until ``release``: a run paused between its writes."""

    def __init__(self, store, key: str) -> None:
        self.store, self.key, self.held = store, key, []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def write(self, key, data):
        if key == self.key:
            self.held.append((key, data))
        else:
            self.store.write(key, data)

    def release(self) -> None:
        for key, data in self.held:
            self.store.write(key, data)


def test_two_runs_filling_one_refit_at_once_leave_a_cache_that_reads_whole(history, tmp_path):
    """Two backtests into one store compute the same refit and interleave their writes: run a
    writes its model, run b all of its entry, then run a its metrics. The cache must still hold
    the metrics' own model (before, b's model replaced a's under one name, a's metrics then
    described a model that was not there, and the entry read as damaged: refit every time)."""
    import hashlib

    from trader_ml.backtest.refit import cache_keys, load_cached, save_cached

    store = fresh_copy(history, tmp_path)
    context = read_table(store, "context")
    days = pd.DatetimeIndex(context["date"])
    job = next(iter(make_jobs(config(), context, days, periods(days, config(), "")).values()))
    runs = {name: (name.encode() * 100, {"sha256": hashlib.sha256(name.encode() * 100).hexdigest()}) for name in "ab"}
    paused = _HeldBack(store, cache_keys(job)[1])
    save_cached(paused, job, *runs["a"])  # a's model written, its metrics held back
    save_cached(store, job, *runs["b"])
    paused.release()
    data, metrics = load_cached(store, job)
    assert (data, metrics["sha256"]) == (runs["a"][0], runs["a"][1]["sha256"])


@pytest.fixture(scope="module")
def portfolio_run(history):
    from trader_ml.backtest.portfolio_run import run_portfolio_backtest

    return run_portfolio_backtest(config(model="portfolio"), history, **QUIET)


def test_portfolio_backtest_rows_and_weights_set_at_the_close_before(portfolio_run, history):
    """Both models refit on one calendar; every simple row, the models' portfolio and its two
    ablations, each against the models' with intervals overall and per year; each day's weights
    read only the close before."""
    result = portfolio_run
    rows, series = result.summary["rows"], result.predictions
    simple = {
        f"{base}{suffix}"
        for base in ("equal_weight", "inverse_vol", "low_vol_half")
        for suffix in ("", "_x_vt", "_x_vt_x_trend")
    }
    assert set(rows) == simple | {"models", "models_rule_exposure", "health_selection", "equal_weight_x_regime"}
    assert rows["models"]["vs_model"]["sharpe_interval"] == [0.0, 0.0]
    for name, row in rows.items():
        low, high = row["vs_model"]["sharpe_interval"]
        assert np.isfinite([low, high]).all() and low <= high, name
        assert set(row["vs_model_by_year"]) == {2002, 2003}
        assert 0 <= row["performance"]["mean_exposure"] <= 1 + 1e-9
    assert rows["equal_weight"]["performance"]["mean_exposure"] == pytest.approx(1.0)
    assert rows["health_selection"]["performance"]["mean_exposure"] == pytest.approx(1.0)
    # the models' targets: a quarter of the six names (one) left out each day, the rest inverse-volatility weighted
    symbols = result.summary["symbols"]
    targets = series[[f"target {s}" for s in symbols]].to_numpy()
    assert ((targets > 0).sum(axis=1) == 5).all()
    features = read_table(history, "features")
    vols = features.pivot(index="date", columns="symbol", values="vol_63d")[symbols]
    day = 100
    before = vols.index[vols.index.searchsorted(pd.Timestamp(series["date"].iloc[day])) - 1]
    kept = targets[day] > 0
    inverse = 1 / vols.loc[before].to_numpy()[kept]
    assert targets[day][kept] == pytest.approx(targets[day].sum() * inverse / inverse.sum())
    page = history.read(f"{result.key}index.html").decode()
    assert page.count("data:image/png;base64,") == 3 and "health_selection" in page
    assert json.loads(history.read(f"{result.key}summary.json"))["kind"] == "portfolio"


def test_the_served_portfolio_is_the_backtests_for_the_same_versions(portfolio_run, history, tmp_path, capsys):
    """The last refit's two models added to a store as its current versions: predict on a day of
    that refit's period serves the weights the backtest set at that close."""
    from trader_ml.backtest.refit import load_cached

    result = portfolio_run
    served = fresh_copy(history, tmp_path)
    for kind, table in (("regime", "context"), ("health", "features")):
        frame = read_table(history, table)
        days = pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(frame["date"])))
        kind_config = config(model=kind)
        jobs = make_jobs(kind_config, frame, days, periods(days, kind_config, ""))
        artifact = tmp_path / f"{kind}.onnx"
        artifact.write_bytes(load_cached(history, jobs[(1, 0)])[0])
        assert main(["models", "add", str(artifact), "--store", served.url, "--promote"]) == 0
    series = result.predictions
    dates = pd.DatetimeIndex(series["date"])
    t = int(np.flatnonzero(dates >= pd.Timestamp("2003-06-02"))[0])  # traded on the close before it
    capsys.readouterr()
    assert main(["predict", "--store", served.url, "--date", str(dates[t - 1].date())]) == 0
    portfolio = json.loads(capsys.readouterr().out)["portfolio"]
    assert portfolio["exposure_source"].startswith("risk budget of regime model")
    symbols = result.summary["symbols"]
    backtest = {s: series[f"target {s}"].iloc[t] for s in symbols}
    assert set(portfolio["weights"]) == {s for s, w in backtest.items() if w > 0}
    for symbol, weight in portfolio["weights"].items():
        assert weight == pytest.approx(backtest[symbol], abs=1e-5)
    assert portfolio["exposure"] == pytest.approx(sum(backtest.values()), abs=1e-5)  # the targets sum to it


def test_appending_days_never_changes_an_earlier_days_portfolio(portfolio_run, history):
    from trader_ml.backtest.portfolio_run import run_portfolio_backtest

    whole = portfolio_run
    shorter = run_portfolio_backtest(config(model="portfolio", end=dt.date(2003, 6, 30)), history, **QUIET)
    assert shorter.refits_fitted == 0  # the same training rows: the same refits
    a, b = shorter.predictions, whole.predictions.iloc[: len(shorter.predictions)]
    assert (a["date"].to_numpy() == b["date"].to_numpy()).all()
    held = [c for c in a.columns if c.startswith(("weight ", "target ")) or c.endswith("_return")]
    np.testing.assert_array_equal(a[held].to_numpy(dtype=float), b[held].to_numpy(dtype=float))


def test_portfolio_command_on_a_context_and_a_features_file(portfolio_run, history, tmp_path, capsys):
    """The two tables as parquet files (what export writes): the same figures as from the store,
    the refits read from its cache; one table alone is refused in one line."""
    files = {}
    for table in ("context", "features"):
        files[table] = str(tmp_path / f"{table}.parquet")
        assert main(["export", "--store", history.url, "--table", table, "--out", files[table]]) == 0
    args = ["backtest", "--model", "portfolio", "--store", history.url, "--start", "2002-01-01", "--epochs", "1"]
    capsys.readouterr()
    assert main([*args, "--workers", "1", "--quiet", "--data", files["context"], "--features", files["features"]]) == 0
    out = capsys.readouterr().out
    assert "0 refits fitted, 4 cached" in out and "models_rule_exposure" in out and "results:" in out
    sharpe = portfolio_run.summary["rows"]["models"]["performance"]["sharpe"]
    assert f"{sharpe:.3f}" in out.split("\nmodels ")[1].split("\n")[0]
    assert main([*args, "--data", files["context"]]) == 2
    assert "give --data CONTEXT.parquet with --features FEATURES.parquet" in capsys.readouterr().err
