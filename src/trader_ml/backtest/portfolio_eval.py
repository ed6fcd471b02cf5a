"""The portfolio rows of a backtest: both models together as the bot uses them, next to the
portfolios a careful person builds without a model, every row held by the same code
(``trader_ml.portfolio.hold``: weights set at the previous close, the same rebalancing, the same
costs).

Day t's weights read only what was known at the close of t - 1: that day's feature rows scored
by the health model of t's refit, the regime model's answer as of t - 1 (which the regime rows
use too), and SPY's returns through t - 1 for variance targeting and the trend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader_ml.backtest.allocation import performance, performance_by_year
from trader_ml.backtest.config import Period
from trader_ml.backtest.history import health_history
from trader_ml.backtest.risk_rules import rule_exposures
from trader_ml.health_inputs import frame_raw
from trader_ml.portfolio import VOL_COLUMN, PortfolioPolicy, equal_weights, hold, inverse_vol_weights, target_weights
from trader_ml.schema import TRADING_DAYS_PER_YEAR
from trader_ml.stats import against_model

MODEL_ROW = "models"


@dataclass
class Universe:
    """The test days' matrices (days x symbols), each day's row as the bot knew it at the close before."""

    dates: pd.DatetimeIndex
    symbols: list[str]
    returns: np.ndarray  # each symbol's return on day t; NaN where it did not trade
    vols: np.ndarray  # vol_63d at the close before; NaN where the symbol had no row then
    scores: np.ndarray  # the health model's score at the close before
    market: np.ndarray  # SPY's return on day t
    variance_target: np.ndarray  # the reference rules' exposures at the close before
    trend: np.ndarray


def wide(features: pd.DataFrame, column: str | np.ndarray, days: pd.DatetimeIndex, symbols: list[str]) -> np.ndarray:
    values = features[column] if isinstance(column, str) else pd.Series(column, index=features.index)
    frame = pd.DataFrame({"date": features["date"], "symbol": features["symbol"], "value": values})
    return frame.pivot(index="date", columns="symbol", values="value").reindex(index=days, columns=symbols).to_numpy()


def health_scores(
    features: pd.DataFrame, feature_days: pd.DatetimeIndex, plan: list[Period], models: list
) -> np.ndarray:
    """Each feature row's score by the model of the refit that trades on it: a row of day d is
    read at d's close for the next day, so by the refit whose period holds the day after d."""
    values = frame_raw(features)
    row_day = feature_days.searchsorted(pd.DatetimeIndex(features["date"]))
    score = np.full(len(features), np.nan)
    for p, model in zip(plan, models, strict=True):
        rows = np.flatnonzero((row_day >= p.first - 1) & (row_day < p.stop - 1))
        score[rows] = health_history(values[rows], model, row_day[rows])
    return score


def universe(
    context: pd.DataFrame, features: pd.DataFrame, test_days: pd.DatetimeIndex, scores: np.ndarray
) -> Universe:
    """The test days' matrices; everything a weight reads is shifted to the close before."""
    days = pd.DatetimeIndex(context["date"])
    at = days.searchsorted(test_days)
    before = days[at - 1]
    symbols = sorted(features["symbol"].unique())
    spy = context["spy_return_1d"].to_numpy(dtype=float)
    rules = rule_exposures(spy)
    return Universe(
        dates=test_days,
        symbols=symbols,
        returns=wide(features, "return_1d", test_days, symbols),
        vols=wide(features, VOL_COLUMN, before, symbols),
        scores=wide(features, scores, before, symbols),
        market=spy[at],
        variance_target=rules["variance_target"][at - 1],
        trend=rules["trend_200d"][at - 1],
    )


def _low_vol_half(vols: np.ndarray) -> np.ndarray:
    """Equal weights over the half of the day's universe with the lowest volatility (the larger half when odd)."""
    listed = np.isfinite(vols) & (vols > 0)
    ranks = np.argsort(np.argsort(np.where(listed, vols, np.inf), axis=1, kind="stable"), axis=1)
    kept = listed & (ranks < np.ceil(listed.sum(axis=1, keepdims=True) / 2))
    return kept / np.maximum(kept.sum(axis=1, keepdims=True), 1)


def targets(u: Universe, budget: np.ndarray, rule: np.ndarray, policy: PortfolioPolicy) -> dict[str, np.ndarray]:
    """Every row's target weights of each day (days x symbols)."""

    def models_at(exposure: np.ndarray) -> np.ndarray:
        return np.stack([target_weights(u.scores[t], u.vols[t], exposure[t], policy)[0] for t in range(len(u.dates))])

    simple = {
        "equal_weight": equal_weights(u.vols),
        "inverse_vol": inverse_vol_weights(u.vols),
        "low_vol_half": _low_vol_half(u.vols),
    }
    out = {
        MODEL_ROW: models_at(budget),
        "models_rule_exposure": models_at(rule),  # today's exposure rule, the named alternative
        "health_selection": models_at(np.ones(len(u.dates))),  # ablation: the health model alone
        "equal_weight_x_regime": simple["equal_weight"] * budget[:, None],  # ablation: the regime model alone
    }
    for name, weights in simple.items():
        out[name] = weights
        out[f"{name}_x_vt"] = weights * u.variance_target[:, None]
        out[f"{name}_x_vt_x_trend"] = weights * (u.variance_target * u.trend)[:, None]
    return out


def evaluate(u: Universe, rows: dict[str, np.ndarray], policy: PortfolioPolicy) -> tuple[dict, pd.DataFrame]:
    """Each row held through the test days: its performance, by year, against the models'
    portfolio with intervals; the day-by-day series and the models' weights for the page."""
    books = {name: hold(weights, u.returns, policy) for name, weights in rows.items()}
    table, columns = {}, {"date": u.dates, "market_return": u.market}
    years = len(u.dates) / TRADING_DAYS_PER_YEAR
    for name, book in books.items():
        exposure = book.weights.sum(axis=1)
        table[name] = {
            "performance": {
                **performance(book.returns, exposure),
                "turnover_per_year": float(book.turnover.sum() / years),
            },
            "by_year": performance_by_year(u.dates, book.returns, exposure),
            "vs_model": against_model(books[MODEL_ROW].returns, book.returns),
            "vs_model_by_year": {
                int(y): against_model(books[MODEL_ROW].returns[year], book.returns[year])
                for y in sorted(set(u.dates.year))
                for year in [u.dates.year == y]
                if year.sum() > 1
            },
        }
        columns[f"{name}_return"] = book.returns
        columns[f"{name}_exposure"] = exposure
        columns[f"{name}_turnover"] = book.turnover
    model = books[MODEL_ROW]
    for j, symbol in enumerate(u.symbols):
        columns[f"weight {symbol}"] = model.weights[:, j]
        columns[f"target {symbol}"] = rows[MODEL_ROW][:, j]
    summary = {
        "kind": "portfolio",
        "rows": table,
        "model_row": MODEL_ROW,
        "test_days": int(len(u.dates)),
        "symbols": u.symbols,
    }
    return summary, pd.DataFrame(columns)
