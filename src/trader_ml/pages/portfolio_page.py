"""A portfolio backtest as one self-contained HTML page: every row against the models' portfolio
with its intervals, per year; equity and drawdown curves, the models' weights over time, turnover."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.pages.kit import figure_png, html_figures, html_table, plt, render_template
from trader_ml.stats import drawdowns

LEGEND_SYMBOLS = 20
PERFORMANCE = ("annual_return", "volatility", "sharpe", "max_drawdown", "mean_exposure", "turnover_per_year")


def _equity(names: list[str], series: pd.DataFrame) -> str:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(2, 1))
    dates = pd.DatetimeIndex(series["date"])
    for name in names:
        returns = series[f"{name}_return"].to_numpy()
        width = 2.0 if name == "models" else 0.9
        top.plot(dates, np.cumprod(1.0 + returns), linewidth=width, label=name)
        bottom.plot(dates, drawdowns(returns), linewidth=width)
    top.set_yscale("log")
    top.set_title("Growth of 1 (log scale), after costs")
    top.legend(fontsize=7, ncol=3)
    bottom.set_title("Drawdown")
    return figure_png(fig)


def _weights(symbols: list[str], series: pd.DataFrame) -> str:
    """The models' held weights as a stacked area; the white above them is cash."""
    fig, ax = plt.subplots(figsize=(10, 4))
    dates = pd.DatetimeIndex(series["date"])
    ax.stackplot(dates, *[series[f"weight {s}"].to_numpy() for s in symbols], labels=symbols, linewidth=0)
    ax.set_ylim(0, 1)
    ax.set_title(f"The models' portfolio: weight of each of {len(symbols)} assets, held each day (the rest in cash)")
    if len(symbols) <= LEGEND_SYMBOLS:  # past that a legend hides the picture
        ax.legend(fontsize=6, ncol=10, loc="upper left")
    return figure_png(fig)


def _turnover(names: list[str], series: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.2))
    dates = pd.DatetimeIndex(series["date"])
    for name in names:
        yearly = pd.Series(series[f"{name}_turnover"].to_numpy(), index=dates).rolling(252, min_periods=21).sum()
        ax.plot(dates, yearly, linewidth=2.0 if name == "models" else 0.9, label=name)
    ax.set_title("Turnover over the past year (sum of |weight traded|)")
    ax.legend(fontsize=7, ncol=3)
    return figure_png(fig)


def _against_model(rows: dict, names: list[str]) -> dict[str, list]:
    out: dict[str, list] = {}
    for metric, label in (("sharpe", "Sharpe"), ("max_drawdown", "max drawdown")):
        out[f"models - row, {label}"] = [rows[n]["vs_model"][f"{metric}_difference"] for n in names]
        out[f"90% interval, {label}"] = [
            "[{:+.3f}, {:+.3f}]".format(*rows[n]["vs_model"][f"{metric}_interval"]) for n in names
        ]
    return out


def render(summary: dict, series: pd.DataFrame) -> str:
    rows = summary["rows"]
    names = list(rows)
    years = sorted({int(y) for n in names for y in rows[n]["by_year"]})

    def by_year(name: str, year: int, key: str):
        part = rows[name]["by_year"].get(str(year), rows[name]["by_year"].get(year, {}))
        return part.get(key) if isinstance(part, dict) else None

    # The models' rows, the best simple row by Sharpe, and the plainest ones
    simple = [n for n in names if n.startswith(("equal_weight", "inverse_vol", "low_vol_half")) and "regime" not in n]
    best = max(simple, key=lambda n: rows[n]["performance"]["sharpe"])
    shown = ["models", "health_selection", "equal_weight_x_regime", best, "inverse_vol_x_vt", "equal_weight"]
    shown = list(dict.fromkeys(n for n in shown if n in rows))
    body = (
        html_table(
            "Portfolios (weights set at the previous close, after costs)",
            names,
            {k: [rows[n]["performance"].get(k) for n in names] for k in PERFORMANCE},
        )
        + html_table(
            "Against the models' portfolio: stationary-bootstrap intervals over the test days",
            names,
            _against_model(rows, names),
        )
        + html_table("Sharpe ratio by year", names, {str(y): [by_year(n, y, "sharpe") for n in names] for y in years})
        + html_table(
            "Models - row, Sharpe by year [90%]",
            names,
            {str(y): [_year_gap(rows[n], y) for n in names] for y in years},
        )
        + html_figures(
            [
                ("Equity and drawdown", _equity(shown, series)),
                ("Weights over time", _weights(summary["symbols"], series)),
                ("Turnover", _turnover(shown, series)),
            ]
        )
    )
    config = {**summary["config"], "model_type": summary["config"]["model_type"]}
    data = {"source": f"{summary['data']['context']} and {summary['data']['features']}", **summary["data"]}
    return render_template(
        "backtest.html",
        config=config,
        data=data,
        refits=len(summary["refits"]["regime"]),
        timing=summary["timing"],
        body=body,
    )


def _year_gap(row: dict, year: int) -> str | None:
    gap = (row.get("vs_model_by_year") or {}).get(str(year)) or (row.get("vs_model_by_year") or {}).get(year)
    if not gap:
        return None
    low, high = gap["sharpe_interval"]
    return f"{gap['sharpe_difference']:+.2f} [{low:+.2f}, {high:+.2f}]"
