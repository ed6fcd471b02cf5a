"""The live section of a training report: how the outgoing champion did since it went live."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.pages.kit import figure_png, plt, render_template
from trader_ml.schema import TRADING_DAYS_PER_YEAR


def rolling_correlation(record: dict, window: int = 21) -> str | None:
    """The health model's daily rank correlation, its 21-day mean, and what its test window promised."""
    daily = record["health"].get("daily_rank_correlation") or {}
    if not daily:
        return None
    series = pd.Series(daily)
    series.index = pd.to_datetime(series.index)
    fig, ax = plt.subplots(figsize=(9, 2.8))
    ax.plot(series.index, series.to_numpy(), color="#bbb", lw=0.8, label="daily")
    ax.plot(
        series.index,
        series.rolling(window, min_periods=5).mean().to_numpy(),
        color="#1565c0",
        label=f"{window}-day mean",
    )
    expected = record["health"].get("expected", {}).get("rank_correlation")
    if expected is not None:
        ax.axhline(expected, color="#2e7d32", ls="--", label="test window")
    ax.axhline(0, color="#999", lw=0.5)
    ax.set_title("Health: rank correlation with the forward 21-day drawdown, live")
    ax.legend(loc="lower left", fontsize=8)
    return figure_png(fig)


def equity_against_band(record: dict) -> str | None:
    """The exposure's live equity against buy-and-hold and the rules, and the band a strategy
    with the backtest's Sharpe and the live volatility would have stayed in (90%)."""
    equity = record["regime"].get("equity")
    if not equity or len(equity["dates"]) < 2:
        return None
    dates = pd.to_datetime(equity["dates"])
    fig, ax = plt.subplots(figsize=(9, 2.8))
    for name, color in (("model", "#1565c0"), ("buy_and_hold", "#757575"), ("rules", "#ef6c00")):
        ax.plot(dates, equity[name], color=color, label=name.replace("_", "-"))
    sharpe = record["regime"].get("expected", {}).get("sharpe")
    vol = record["regime"]["model"].get("volatility")
    if sharpe is not None and vol:
        days = np.arange(1, len(dates) + 1)
        daily_vol = vol / np.sqrt(TRADING_DAYS_PER_YEAR)
        drift = sharpe * daily_vol * days
        spread = 1.645 * daily_vol * np.sqrt(days)
        ax.fill_between(
            dates, np.exp(drift - spread), np.exp(drift + spread), color="#1565c0", alpha=0.12, label="backtest band"
        )
    ax.set_title("Regime exposure, live: growth of 1")
    ax.legend(loc="upper left", fontsize=8)
    return figure_png(fig)


def live_section(record: dict | None, lines: list[str]) -> str:
    """HTML for the report: the verdicts (``lines``, as ``trader-ml monitor`` prints them), the
    figures, or why there is nothing to show."""
    unavailable = (record or {}).get("unavailable")
    if record is None or unavailable:
        return render_template("live.html", recorded=False, unavailable=unavailable, lines=[], figures=[])
    figures = [f for f in (rolling_correlation(record), equity_against_band(record)) if f]
    return render_template("live.html", recorded=True, unavailable=None, lines=lines, figures=figures)
