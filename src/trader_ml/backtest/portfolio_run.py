"""The portfolio backtest: the regime and health refits of one calendar (cached like any other),
each test day's weights from both, every row held by the same policy, written to
``backtests/portfolio-<id>/``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from trader_ml.backtest import portfolio_eval, regime_eval
from trader_ml.backtest.config import BacktestConfig, check_history, periods
from trader_ml.backtest.history import regime_history
from trader_ml.backtest.refit import fingerprint
from trader_ml.backtest.runner import (
    RESULTS_PREFIX,
    TABLE,
    BacktestResult,
    json_default,
    load_frame,
    make_jobs,
    min_days,
    refits_record,
    run_refits,
)
from trader_ml.errors import TraderMLError
from trader_ml.exposure import exposure
from trader_ml.portfolio import PortfolioPolicy
from trader_ml.serving.artifacts import HealthModel
from trader_ml.store import Store


def portfolio_id(config: BacktestConfig, context: pd.DataFrame, features: pd.DataFrame) -> str:
    settings = {k: v for k, v in config.to_dict().items() if k not in ("workers", "ray_address")}
    text = json.dumps(settings, sort_keys=True) + fingerprint(context) + fingerprint(features)
    return f"portfolio-{config.refit}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _plan(config: BacktestConfig, store: Store, data: str | None):
    frame, where = load_frame(config, store, data)
    days = pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(frame["date"])))
    plan = periods(days, config, where)
    check_history(plan, days, min_days(config), TABLE[config.model])
    return frame, where, days, plan


def run_portfolio_backtest(
    config: BacktestConfig,
    store: Store,
    context_data: str | None = None,
    features_data: str | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> BacktestResult:
    """Refit both models on the calendar of ``config``, hold every portfolio row through the test
    days, and write the results. Bad input raises before anything is written."""
    began = time.perf_counter()
    kinds = {kind: dataclasses.replace(config, model=kind, model_type=None) for kind in ("regime", "health")}
    context, where_c, days_c, plan_c = _plan(kinds["regime"], store, context_data)
    features, where_f, days_f, plan_f = _plan(kinds["health"], store, features_data)
    if [p.refit_date for p in plan_c] != [p.refit_date for p in plan_f]:
        raise TraderMLError(
            f"the context ({where_c}) and the features ({where_f}) give different refit dates: "
            "they must cover the same test days"
        )
    log(
        f"portfolio backtest on {where_c} and {where_f}: {len(plan_c)} {config.refit} refits of each model, "
        f"test days {days_c[plan_c[0].first].date()} .. {days_c[plan_c[-1].stop - 1].date()}"
    )
    refits = {}
    for kind, frame, days, plan in (("regime", context, days_c, plan_c), ("health", features, days_f, plan_f)):
        refits[kind], _ = run_refits(kinds[kind], store, make_jobs(kinds[kind], frame, days, plan), log, progress)
    probs, budget, missing, test = _regime_answers(context, days_c, plan_c, refits["regime"], where_c)
    models = [HealthModel.from_bytes(refits["health"].models[(i, 0)]) for i in range(len(plan_f))]
    scores = portfolio_eval.health_scores(features, days_f, plan_f, models)
    universe = portfolio_eval.universe(context, features, days_c[test], scores)
    policy = PortfolioPolicy(cost_bp=config.cost_bp)
    rows = portfolio_eval.targets(universe, budget, exposure(probs), policy)
    summary, series = portfolio_eval.evaluate(universe, rows, policy)
    summary = {
        "config": config.to_dict(),
        "policy": dataclasses.asdict(policy),
        "data": {
            "context": where_c,
            "features": where_f,
            "first_date": str(days_c[0].date()),
            "last_date": str(days_c[-1].date()),
        },
        **summary,
        "regime_fallback_days": int(missing.sum()),
        "refits": {
            kind: refits_record(plan, refits[kind], 1) for kind, plan in (("regime", plan_c), ("health", plan_f))
        },
        "timing": {
            "seconds": round(time.perf_counter() - began, 1),
            "refits_fitted": sum(r.fitted for r in refits.values()),
            "refits_cached": sum(r.cached for r in refits.values()),
        },
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    key = f"{RESULTS_PREFIX}{portfolio_id(config, context, features)}/"
    page = write_results(store, key, config, summary, series)
    timing = summary["timing"]
    return BacktestResult(key, summary, series, page, timing["refits_fitted"], timing["refits_cached"])


def write_results(store: Store, key: str, config: BacktestConfig, summary: dict, series: pd.DataFrame) -> str:
    """config.json, predictions.parquet, summary.json and the page under ``key``; the page."""
    from trader_ml.pages.portfolio_page import render

    page = render(summary, series)
    buffer = io.BytesIO()
    series.to_parquet(buffer, index=False)
    store.write_many(
        [
            (f"{key}config.json", json.dumps(config.to_dict(), indent=2).encode()),
            (f"{key}predictions.parquet", buffer.getvalue()),
            (f"{key}summary.json", json.dumps(summary, indent=2, default=json_default).encode()),
            (f"{key}index.html", page.encode()),
        ]
    )
    return page


def _regime_answers(context: pd.DataFrame, days: pd.DatetimeIndex, plan, refits, where: str):
    """(each test day's regime probabilities as of the close before, the risk budget's exposure,
    the days the model could not answer (the rules then do, as serving falls back), the test
    days' positions)."""
    prepared = regime_eval.prepare(context, days, plan, None, where)
    probs = regime_eval.model_probs(prepared, plan, refits, 0)
    missing = ~np.isfinite(probs).all(axis=1)
    test = np.concatenate([np.arange(p.first, p.stop) for p in plan])
    probs[missing] = regime_history(prepared.values)[0][test - 1][missing]
    return probs, regime_eval.prior_exposures(prepared, plan, refits, 0, probs), missing, test
