"""Several markets in one backtest: each run on its own, then their figures pooled.

Regime rows pool their test days: every row's daily returns of all markets, end to end, give
its pooled performance, and the model against each row on those days gets the same
stationary-bootstrap interval as within one market. Health rows pool their daily measures
as day-weighted means of each market's.
"""

from __future__ import annotations

import numpy as np

from trader_ml.backtest.allocation import performance
from trader_ml.stats import against_model


def pooled_regime(results: list) -> dict:
    """Pooled rows of regime backtests (each a BacktestResult): the rows every market has."""
    names = [n for n in results[0].summary["rows"] if all(n in r.summary["rows"] for r in results)]
    model = results[0].summary.get("model_row", names[0])
    returns = {n: np.concatenate([r.predictions[f"{n}_return"].to_numpy() for r in results]) for n in names}
    held = {n: np.concatenate([r.predictions[f"{n}_exposure"].to_numpy() for r in results]) for n in names}
    rows = {
        n: {"performance": performance(returns[n], held[n]), "vs_model": against_model(returns[model], returns[n])}
        for n in names
    }
    return {"kind": "regime", "rows": rows, "model_row": model, "test_days": int(len(returns[model]))}


def pooled_health(results: list) -> dict:
    """Day-weighted means of each market's health measures, for the rows every market has."""
    names = [n for n in results[0].summary["rows"] if all(n in r.summary["rows"] for r in results)]
    days = np.array([r.summary["test_days"] for r in results], dtype=float)
    rows = {}
    for name in names:
        rows[name] = {}
        for measure in ("spearman", "auc", "brier"):
            values = [r.summary["rows"][name].get(measure, {}).get("mean") for r in results]
            if all(isinstance(v, (int, float)) for v in values):
                rows[name][measure] = {"mean": float(np.average(values, weights=days))}
    return {"kind": "health", "rows": rows, "test_days": int(days.sum())}


def pooled(results: list) -> dict:
    """The pooled summary of several markets' results, with each market's source and days."""
    kind = results[0].summary["kind"]
    body = pooled_regime(results) if kind == "regime" else pooled_health(results)
    body["markets"] = [
        {"source": r.summary["data"]["source"], "key": r.key, "test_days": r.summary["test_days"]} for r in results
    ]
    return body


def pooled_text(summary: dict) -> str:
    """The pooled figures as the lines the command prints."""
    from trader_ml.pages.backtest_text import REGIME_COLUMNS, with_interval
    from trader_ml.training.metrics import format_table

    head = f"pooled over {len(summary['markets'])} markets, {summary['test_days']} test days"
    if summary["kind"] == "regime":
        table = {
            name: [row["performance"][k] for k in REGIME_COLUMNS]
            + [with_interval(row["vs_model"], "sharpe"), with_interval(row["vs_model"], "max_drawdown")]
            for name, row in summary["rows"].items()
        }
        columns = [*REGIME_COLUMNS.values(), "model-row Sharpe [90%]", "model-row DD [90%]"]
    else:
        table = {
            n: [row.get(m, {}).get("mean") for m in ("spearman", "auc", "brier")] for n, row in summary["rows"].items()
        }
        columns = ["spearman", "AUC", "Brier"]
    return head + "\n" + format_table("", columns, table).lstrip("\n")
