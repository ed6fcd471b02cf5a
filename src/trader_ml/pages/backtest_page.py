"""A backtest's results as one self-contained HTML page: tables, curves, ribbons, per-year bars."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.pages.backtest_text import model_gap
from trader_ml.pages.kit import COLORS, REGIME_CMAP, figure_png, html_figures, html_table, plt, render_template
from trader_ml.schema import REGIMES
from trader_ml.stats import drawdowns

PERFORMANCE = ("annual_return", "volatility", "sharpe", "max_drawdown", "exposure_changes_per_year", "mean_exposure")


def _equity(summary: dict, predictions: pd.DataFrame) -> str:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=(2, 1))
    dates = pd.DatetimeIndex(predictions["date"])
    for name in summary["rows"]:
        equity = np.cumprod(1.0 + predictions[f"{name}_return"].to_numpy())
        top.plot(dates, equity, linewidth=1.1, label=name)
        bottom.plot(dates, drawdowns(predictions[f"{name}_return"].to_numpy()), linewidth=0.9)
    top.set_yscale("log")
    top.set_title("Growth of 1 (log scale), after costs")
    top.legend(fontsize=8, ncol=3)
    bottom.set_title("Drawdown")
    return figure_png(fig)


def _ribbons(summary: dict, predictions: pd.DataFrame) -> str:
    """The market, with each row's regime of each day as a coloured band beneath it."""
    from matplotlib.dates import date2num

    named = [n for n, row in summary["rows"].items() if f"{n}_regime" in predictions]
    if "truth" in predictions:
        named = ["truth", *named]
    fig, axes = plt.subplots(
        1 + len(named), 1, figsize=(10, 2.2 + 0.35 * len(named)), sharex=True, height_ratios=[6] + [1] * len(named)
    )
    dates = pd.DatetimeIndex(predictions["date"])
    axes[0].plot(dates, np.cumprod(1.0 + predictions["market_return"].to_numpy()), color="black", linewidth=1)
    axes[0].set_yscale("log")
    axes[0].set_title("The market, and each row's regime by day")
    index = {r: i for i, r in enumerate(REGIMES)}
    for ax, name in zip(axes[1:], named, strict=True):
        column = predictions[name] if name == "truth" else predictions[f"{name}_regime"].map(index)
        codes = np.asarray(column, dtype=int)
        ax.imshow(
            codes[None, :],
            aspect="auto",
            cmap=REGIME_CMAP,
            vmin=0,
            vmax=len(REGIMES) - 1,
            extent=(date2num(dates[0]), date2num(dates[-1]), 0, 1),
            interpolation="nearest",
        )
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    axes[0].set_xlim(dates[0], dates[-1])
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS]
    axes[0].legend(handles, REGIMES, fontsize=7, loc="upper left", ncol=5)
    return figure_png(fig)


def _year_bars(by_row: dict[str, dict[int, float | None]], title: str) -> str:
    years = sorted({y for values in by_row.values() for y in values})
    fig, ax = plt.subplots(figsize=(10, 3.4))
    width = 0.8 / max(len(by_row), 1)
    for i, (name, values) in enumerate(by_row.items()):
        heights = [values.get(y) if values.get(y) is not None else np.nan for y in years]
        ax.bar(np.arange(len(years)) + i * width, heights, width, label=name)
    ax.set_xticks(np.arange(len(years)) + 0.4 - width / 2, [str(y) for y in years], rotation=60, fontsize=8)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=3)
    return figure_png(fig)


def _scatter(summary: dict) -> str:
    """Every row's Sharpe ratio against its max drawdown: up and to the right is better."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, row in summary["rows"].items():
        p = row["performance"]
        ax.scatter(p["max_drawdown"], p["sharpe"], color="#1565c0" if name == summary.get("model_row") else "#757575")
        ax.annotate(name, (p["max_drawdown"], p["sharpe"]), fontsize=8, xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel("max drawdown")
    ax.set_ylabel("Sharpe ratio")
    ax.set_title("Sharpe against drawdown, every row")
    return figure_png(fig)


def _against_model(rows: dict, names: list[str]) -> dict[str, list]:
    """Model minus each row, with the 90% interval: what a decision may rest on."""
    out: dict[str, list] = {}
    for metric, label in (("sharpe", "Sharpe"), ("max_drawdown", "max drawdown")):
        out[f"model - row, {label}"] = [
            rows[n]["vs_model"][f"{metric}_difference"] if "vs_model" in rows[n] else None for n in names
        ]
        out[f"90% interval, {label}"] = [
            "[{:+.3f}, {:+.3f}]".format(*rows[n]["vs_model"][f"{metric}_interval"]) if "vs_model" in rows[n] else None
            for n in names
        ]
    return out


def _regime_body(summary: dict, predictions: pd.DataFrame) -> str:
    rows = summary["rows"]
    names = list(rows)
    perf = {k: [rows[n]["performance"][k] for n in names] for k in PERFORMANCE}
    labels = {
        f"{k} vs {what}": [rows[n][f"vs_{what}"][k] if rows[n].get(f"vs_{what}") else None for n in names]
        for what in ("labels", "truth")
        for k in ("f1_macro", "accuracy")
        if any(rows[n].get(f"vs_{what}") for n in names)
    }
    years = sorted({int(y) for n in names for y in rows[n]["by_year"]})
    yearly = {
        str(y): [rows[n]["by_year"].get(str(y), rows[n]["by_year"].get(y, {})).get("sharpe") for n in names]
        for y in years
    }
    sharpe_by_year = {
        n: {y: rows[n]["by_year"].get(str(y), rows[n]["by_year"].get(y, {})).get("sharpe") for y in years}
        for n in names
    }
    return (
        html_table("Strategies (exposure = P(calm) + P(risk-on) + 0.5 P(choppy), after costs)", names, perf)
        + html_table(
            f"Against the model ({summary.get('model_row')}): stationary-bootstrap intervals over the test days",
            names,
            _against_model(rows, names),
        )
        + html_table("Regime classification", names, labels)
        + html_table("Sharpe ratio by year", names, yearly)
        + html_figures(
            [
                ("Equity and drawdown", _equity(summary, predictions)),
                ("Sharpe against drawdown", _scatter(summary)),
                ("Regimes", _ribbons(summary, predictions)),
                ("Sharpe ratio by year", _year_bars(sharpe_by_year, "Sharpe ratio by year")),
            ]
        )
    )


def _health_body(summary: dict) -> str:
    rows = summary["rows"]
    names = list(rows)

    def cell(name: str, measure: str, part: str):
        value = rows[name].get(measure)
        return value.get(part) if isinstance(value, dict) else value

    table = {
        f"{m} {part}": [cell(n, m, part) for n in names]
        for m in ("log_loss", "brier", "spearman", "auc")
        for part in ("mean", "se")
    }
    for m in ("log_loss", "brier", "spearman"):
        table[f"model - row, {m} [90%]"] = [model_gap(rows[n], m) for n in names]
    table["spearman - (-vol_63d)"] = [cell(n, "spearman_minus_-vol_63d", "mean") for n in names]
    table["t of that difference"] = [cell(n, "spearman_minus_-vol_63d", "t") for n in names]
    if any("truth_spearman" in rows[n] for n in names):
        table["spearman with the hidden state"] = [rows[n].get("truth_spearman") for n in names]
    years = sorted({int(y) for n in names for y in rows[n]["by_year"]})
    ic = {
        n: {y: rows[n]["by_year"].get(str(y), rows[n]["by_year"].get(y, {})).get("spearman") for y in years}
        for n in names
    }
    yearly = {str(y): [ic[n][y] for n in names] for y in years}
    return (
        html_table("Scores, mean over days (standard errors: Newey-West, 21 lags)", names, table)
        + html_table("Daily Spearman with the forward 21-day drawdown, by year", names, yearly)
        + html_figures(
            [("Health IC by year", _year_bars(ic, "Mean daily Spearman with the forward drawdown, by year"))]
        )
    )


def render(summary: dict, predictions: pd.DataFrame) -> str:
    config = summary["config"]
    body = _regime_body(summary, predictions) if summary["kind"] == "regime" else _health_body(summary)
    return render_template(
        "backtest.html",
        config=config,
        data=summary["data"],
        refits=len(summary["refits"]),
        timing=summary["timing"],
        body=body,
    )
