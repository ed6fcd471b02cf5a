"""The walk-forward backtest: refit on the days before each refit date, answer the days after it
as the served model would have, and judge it next to the rows a user could pick instead.

Steps: read the table -> refit calendar -> cached or new refits (parallel) -> each day's answer
through the exported ONNX and the serving code -> rows, tables, page -> ``backtests/<id>/``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from trader_ml.backtest.config import BacktestConfig, Period, check_history, periods
from trader_ml.backtest.execute import Progress, default_workers, run_jobs
from trader_ml.backtest.refit import RefitJob, RefitSpec, fingerprint, load_cached, make_job, save_cached
from trader_ml.data import suspect
from trader_ml.data.partitions import read_file, read_table
from trader_ml.errors import TraderMLError
from trader_ml.schema import TABLE_PREFIX
from trader_ml.store import Store

RESULTS_PREFIX = "backtests/"
TABLE = {"regime": "context", "health": "features"}


@dataclass
class BacktestResult:
    key: str  # backtests/<id>/
    summary: dict
    predictions: pd.DataFrame
    page: str
    refits_fitted: int
    refits_cached: int


@dataclass
class Refits:
    """Each refit's ONNX bytes and metrics, by (period index, seed)."""

    models: dict[tuple[int, int], bytes]
    metrics: dict[tuple[int, int], dict]
    fitted: int
    cached: int


def load_frame(config: BacktestConfig, store: Store, data: str | None) -> tuple[pd.DataFrame, str]:
    """The whole context or features table, from ``data`` (a parquet file) or the store."""
    table = TABLE[config.model]
    if data:
        frame, where = read_file(data, table), data
    else:
        frame, where = suspect.leave_out(store, read_table(store, table)), store.describe(TABLE_PREFIX[table])
        if frame.empty:
            raise TraderMLError(
                f"No historical data found: {where} holds no partitions. "
                f"Ingest some first, e.g. trader-ml ingest --source sample --store {store.url}"
            )
    if config.end:
        frame = frame[pd.DatetimeIndex(frame["date"]) <= pd.Timestamp(config.end)].reset_index(drop=True)
        if frame.empty:
            raise TraderMLError(f"{where}: no {table} rows on or before --end {config.end}")
    return frame, where


def min_days(config: BacktestConfig) -> int:
    if config.model == "regime":
        from trader_ml.training.regime import min_training_days, regime_train_config

        return min_training_days(regime_train_config(config.resolved_type))
    from trader_ml.training.health import health_train_config, min_training_days

    return min_training_days(health_train_config(config.resolved_type))


def make_jobs(config: BacktestConfig, frame: pd.DataFrame, days: pd.DatetimeIndex, plan: list[Period]):
    """One job per (period, seed): the rows dated from the window's first day to the day before
    the refit date."""
    dates = pd.DatetimeIndex(frame["date"])
    jobs = {}
    for i, p in enumerate(plan):
        lo, hi = dates.searchsorted(days[p.train_first]), dates.searchsorted(p.refit_date)
        rows = frame.iloc[lo:hi].reset_index(drop=True)
        for seed in range(config.seeds):
            spec = RefitSpec(config.model, config.resolved_type, seed, config.epochs, str(p.refit_date.date()))
            jobs[(i, seed)] = make_job(spec, rows)
    return jobs


def run_refits(
    config: BacktestConfig,
    store: Store,
    jobs: dict[tuple[int, int], RefitJob],
    log: Callable[[str], None],
    progress: bool,
    while_waiting: Callable[[], object] | None = None,
    after_each: Callable[[int], None] | None = None,
):
    """Cached refits are read back; the rest run (in parallel) and are cached as each ends.
    ``while_waiting`` runs in this thread meanwhile; its value is returned with the refits."""
    models, metrics = {}, {}
    todo = []
    for slot, job in jobs.items():
        cached = load_cached(store, job)
        if cached is None:
            todo.append(job)
        else:
            models[slot], metrics[slot] = cached[0], {**cached[1], "cached": True}
    slots = {job.key: slot for slot, job in jobs.items()}
    # Longest first: on an expanding window the last refits are the largest, and started last
    # they would run alone at the end while the other workers idle.
    todo.sort(key=lambda job: len(job.rows), reverse=True)
    workers = config.workers or default_workers()
    if todo:
        where = f"Ray at {config.ray_address}" if config.ray_address else f"{min(workers, len(todo))} process(es)"
        log(f"fitting {len(todo)} refits on {where}; {len(jobs) - len(todo)} cached")
    bar = Progress(len(todo), log, progress)
    finished = 0

    def done(job: RefitJob, data: bytes, job_metrics: dict) -> None:
        nonlocal finished
        save_cached(store, job, data, job_metrics)
        models[slots[job.key]], metrics[slots[job.key]] = data, {**job_metrics, "cached": False}
        finished += 1
        bar.step(job, job_metrics["fit"]["seconds"])
        if after_each is not None:
            after_each(finished)

    failure: list[BaseException] = []

    def work() -> None:
        try:
            run_jobs(todo, workers, config.ray_address, done)
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)

    thread = threading.Thread(target=work, name="refits", daemon=True)
    thread.start()
    extra = while_waiting() if while_waiting is not None else None
    thread.join()
    bar.close()
    if failure:
        raise failure[0]
    return Refits(models, metrics, len(todo), len(jobs) - len(todo)), extra


def result_id(config: BacktestConfig, frame: pd.DataFrame) -> str:
    settings = {k: v for k, v in config.to_dict().items() if k not in ("workers", "ray_address")}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode() + fingerprint(frame).encode()).hexdigest()
    return f"{config.model}-{config.resolved_type}-{config.refit}-{digest[:12]}"


def run_backtest(
    config: BacktestConfig,
    store: Store,
    data: str | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    after_each: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Run a backtest and write ``backtests/<id>/`` (config.json, predictions.parquet,
    summary.json, index.html) to ``store``. Bad input raises before anything is written."""
    began = time.perf_counter()
    frame, where = load_frame(config, store, data)
    days = pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(frame["date"])))
    plan = periods(days, config, where)
    check_history(plan, days, min_days(config), TABLE[config.model])
    if config.model == "regime":
        from trader_ml.backtest import regime_eval as evaluation
    else:
        from trader_ml.backtest import health_eval as evaluation
    prepared = evaluation.prepare(frame, days, plan, store if data is None else None, where)
    jobs = make_jobs(config, frame, days, plan)
    log(
        f"backtest of the {config.resolved_type} {config.model} model on {where}: {len(plan)} refits "
        f"({config.refit}, {'expanding' if config.window_days is None else f'last {config.window_days} days'}), "
        f"test days {days[plan[0].first].date()} .. {days[plan[-1].stop - 1].date()}"
    )
    refits, references = run_refits(
        config, store, jobs, log, progress, lambda: evaluation.references(prepared, plan), after_each
    )
    summary, predictions = evaluation.evaluate(prepared, plan, refits, references, config)
    summary = {
        "config": config.to_dict(),
        "data": {"source": where, "first_date": str(days[0].date()), "last_date": str(days[-1].date())},
        **summary,
        "refits": refits_record(plan, refits, config.seeds),
        "timing": {
            "seconds": round(time.perf_counter() - began, 1),
            "refits_fitted": refits.fitted,
            "refits_cached": refits.cached,
            "fit_seconds": round(sum(m["fit"]["seconds"] for m in refits.metrics.values() if not m["cached"]), 1),
        },
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    from trader_ml.pages.backtest_page import render

    page = render(summary, predictions)
    key = f"{RESULTS_PREFIX}{result_id(config, frame)}/"
    buffer = io.BytesIO()
    predictions.to_parquet(buffer, index=False)
    store.write(f"{key}config.json", json.dumps(config.to_dict(), indent=2).encode())
    store.write(f"{key}predictions.parquet", buffer.getvalue())
    store.write(f"{key}summary.json", json.dumps(summary, indent=2, default=json_default).encode())
    store.write(f"{key}index.html", page.encode())
    return BacktestResult(key, summary, predictions, page, refits.fitted, refits.cached)


def refits_record(plan, refits: Refits, seeds: int) -> list[dict]:
    """Each refit: its date, its test and training days, and each seed's facts and choices."""
    return [
        {
            "refit_date": str(p.refit_date.date()),
            "test_days": p.stop - p.first,
            "train_days": p.first - p.train_first,
            "seeds": [_refit_facts(refits.metrics[(i, s)]) for s in range(seeds)],
        }
        for i, p in enumerate(plan)
    ]


def _refit_facts(metrics: dict) -> dict:
    return {
        "seed": metrics["seed"],
        "trained_through": metrics["data_window"]["last_date"],
        "cached": metrics["cached"],
        **{k: metrics["fit"][k] for k in ("seconds", "epochs_run", "best_epoch")},
        **metrics.get("choices", {}),
    }


def json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
