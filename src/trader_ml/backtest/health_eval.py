"""The health rows of a backtest: the model (per seed), the heuristic, -vol_63d and -vol_21d,
judged day by day against what happened over the next 21 trading days.

A row's score on day d reads that day's features only (known at d's close); its outcome is
the forward drawdown from d's close, rebuilt from later rows' ``return_1d``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader_ml.backtest.config import BacktestConfig, Period
from trader_ml.backtest.health_stats import daily_measures, mean_with_se
from trader_ml.errors import TraderMLError
from trader_ml.schema import ASSET_FEATURES
from trader_ml.serving.artifacts import HealthModel
from trader_ml.serving.history import health_history
from trader_ml.store import Store
from trader_ml.training.labels import HEALTH_HORIZON, health_targets

MEASURES = ("spearman", "auc", "brier")
REFERENCE = "-vol_63d"  # the row every score must beat: volatility clusters


@dataclass
class Prepared:
    features: pd.DataFrame
    values: np.ndarray  # (rows, 10)
    row_day: np.ndarray  # position of each row's date in the data's days
    dates: pd.DatetimeIndex  # each row's date
    target: np.ndarray  # 1: not in the worst fifth of its day; NaN unknown
    drawdown: np.ndarray  # forward 21-day drawdown
    truth: np.ndarray | None  # hidden health state (higher healthier), synthetic data only


def prepare(
    frame: pd.DataFrame, days: pd.DatetimeIndex, plan: list[Period], store: Store | None, where: str
) -> Prepared:
    from trader_ml.data.truth import health_truth

    target, drawdown = health_targets(frame)
    dates = pd.DatetimeIndex(frame["date"])
    row_day = days.searchsorted(dates)
    test = (row_day >= plan[0].first) & (row_day < plan[-1].stop)
    if not np.isfinite(drawdown[test]).any():
        raise TraderMLError(
            f"{where}: no test row has a known {HEALTH_HORIZON}-day outcome: the outcomes are rebuilt from "
            "return_1d of the following days, which this table does not hold (end the backtest earlier)"
        )
    return Prepared(
        features=frame,
        values=frame[list(ASSET_FEATURES)].to_numpy(dtype=np.float64),
        row_day=row_day,
        dates=dates,
        target=target,
        drawdown=drawdown,
        truth=health_truth(store, frame),
    )


def references(prepared: Prepared, plan: list[Period]) -> dict[str, np.ndarray]:
    """The scores that need no training, on every row: the heuristic and minus volatility."""
    column = {name: prepared.values[:, ASSET_FEATURES.index(name)] for name in ("vol_63d", "vol_21d")}
    return {
        "heuristic": health_history(prepared.values),
        "-vol_63d": -column["vol_63d"],
        "-vol_21d": -column["vol_21d"],
    }


def _summarise(measures: pd.DataFrame, probability: bool) -> dict:
    years = pd.DatetimeIndex(measures.index).year
    out = {m: mean_with_se(measures[m], HEALTH_HORIZON) for m in MEASURES if probability or m != "brier"}
    out["by_year"] = {
        int(y): {
            m: float(np.nanmean(measures[m][years == y])) if np.isfinite(measures[m][years == y]).any() else None
            for m in MEASURES
            if probability or m != "brier"
        }
        for y in sorted(set(years))
    }
    return out


def evaluate(prepared: Prepared, plan: list[Period], refits, references_: dict, config: BacktestConfig):
    in_test = (prepared.row_day >= plan[0].first) & (prepared.row_day < plan[-1].stop)
    rows = np.flatnonzero(in_test)
    scores: dict[str, np.ndarray] = {}
    probability = {"heuristic": True, "-vol_63d": False, "-vol_21d": False}
    for seed in range(config.seeds):
        name = config.resolved_type if config.seeds == 1 else f"{config.resolved_type} seed {seed}"
        score = np.full(len(prepared.values), np.nan)
        for i, p in enumerate(plan):
            period_rows = np.flatnonzero((prepared.row_day >= p.first) & (prepared.row_day < p.stop))
            model = HealthModel.from_bytes(refits.models[(i, seed)])
            score[period_rows] = health_history(prepared.values[period_rows], model)
        scores[name], probability[name] = score, True
    scores.update(references_)
    dates = prepared.dates[rows]
    target, drawdown = prepared.target[rows], prepared.drawdown[rows]
    daily = {
        name: daily_measures(dates, score[rows], drawdown, target, probability[name]) for name, score in scores.items()
    }
    table = {name: _summarise(measures, probability[name]) for name, measures in daily.items()}
    for name, measures in daily.items():
        if name != REFERENCE:
            gap = measures["spearman"] - daily[REFERENCE]["spearman"]
            table[name][f"spearman_minus_{REFERENCE}"] = mean_with_se(gap, HEALTH_HORIZON)
        if prepared.truth is not None:
            truth = daily_measures(dates, scores[name][rows], prepared.truth[rows], target, False)["spearman"]
            table[name]["truth_spearman"] = float(np.nanmean(truth))
    columns = {
        "date": dates,
        "symbol": prepared.features["symbol"].to_numpy()[rows],
        "target": target,
        "forward_drawdown": drawdown,
        **{f"score {name}": score[rows] for name, score in scores.items()},
    }
    summary = {
        "kind": "health",
        "rows": table,
        "test_days": int(len(np.unique(prepared.row_day[rows]))),
        "test_rows": int(len(rows)),
        "event_rate": float(1.0 - np.nanmean(target)),
    }
    return summary, pd.DataFrame(columns)
