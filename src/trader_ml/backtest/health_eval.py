"""The health rows of a backtest: the model (per seed); as probabilities, the base rate and the
heuristic, -vol_63d and -vol_21d calibrated on each refit's own training days; as rankings, the
raw heuristic, -vol_63d and -vol_21d; all judged day by day against the next 21 trading days.

A row's score on day d reads that day's features only (known at d's close); its outcome is
the forward drawdown from d's close, rebuilt from later rows' ``return_1d``. A calibration fit
for a refit reads only training days whose outcome was known before the refit date.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader_ml.backtest.config import BacktestConfig, Period
from trader_ml.backtest.health_stats import daily_measures
from trader_ml.backtest.history import health_history
from trader_ml.errors import TraderMLError
from trader_ml.health_inputs import RAW_COLUMNS, frame_raw
from trader_ml.serving.artifacts import HealthModel
from trader_ml.stats import interval, mean_with_se, over_resamples, resamples
from trader_ml.store import Store
from trader_ml.training.health_references import BASE_RATE, REFERENCES, fit_references
from trader_ml.training.labels import HEALTH_HORIZON, health_targets

MEASURES = ("spearman", "auc", "log_loss", "brier")
PROBABILITY_ONLY = ("log_loss", "brier")
REFERENCE = "-vol_63d"  # the ranking a score must not fall behind: volatility clusters


@dataclass
class Prepared:
    features: pd.DataFrame
    values: np.ndarray  # (rows, RAW_COLUMNS)
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
        values=frame_raw(frame),
        row_day=row_day,
        dates=dates,
        target=target,
        drawdown=drawdown,
        truth=health_truth(store, frame),
    )


def references(prepared: Prepared, plan: list[Period]) -> dict[str, np.ndarray]:
    """The scores that train no network: the calibrated references, each refit's own fit on its
    training days, over that refit's test days; the heuristic and minus volatility on every row."""
    column = {name: prepared.values[:, RAW_COLUMNS.index(name)] for name in ("vol_63d", "vol_21d")}
    calibrated = {name: np.full(len(prepared.values), np.nan) for name in REFERENCES}
    known = np.isfinite(prepared.target)
    for p in plan:
        # Day d's outcome ends HEALTH_HORIZON trading days later: known before the refit date only
        # when d + HEALTH_HORIZON < p.first.
        train = known & (prepared.row_day >= p.train_first) & (prepared.row_day + HEALTH_HORIZON < p.first)
        test = (prepared.row_day >= p.first) & (prepared.row_day < p.stop)
        for name, ref in fit_references(prepared.values[train], prepared.target[train]).items():
            calibrated[name][test] = ref.probability(prepared.values[test])
    return {
        **calibrated,
        "heuristic": health_history(prepared.values),
        "-vol_63d": -column["vol_63d"],
        "-vol_21d": -column["vol_21d"],
    }


def _summarise(measures: pd.DataFrame, probability: bool) -> dict:
    years = pd.DatetimeIndex(measures.index).year
    kept = [m for m in MEASURES if probability or m not in PROBABILITY_ONLY]
    out = {m: mean_with_se(measures[m], HEALTH_HORIZON) for m in kept}
    out["by_year"] = {
        int(y): {
            m: float(np.nanmean(measures[m][years == y])) if np.isfinite(measures[m][years == y]).any() else None
            for m in kept
        }
        for y in sorted(set(years))
    }
    return out


def model_minus(model: pd.DataFrame, other: pd.DataFrame, measures: tuple[str, ...], seed: int = 0) -> dict:
    """Model minus another row in the mean of each daily measure, with its 90% stationary-bootstrap
    interval over the test days (the same resampled days for every measure; the block length from
    the first measure's daily difference). Log loss and Brier: below zero, the model is better."""
    gaps = {m: (model[m] - other[m]).to_numpy(dtype=float) for m in measures}
    first = gaps[measures[0]]
    days = np.isfinite(first)
    index = resamples(first[days], seed)
    out = {}
    for m, gap in gaps.items():
        gap = gap[days]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample of days none of which is scored
            draws = over_resamples(lambda g: np.nanmean(g, axis=-1), index, gap)
        out[m] = {"difference": float(np.nanmean(gap)), "interval": interval(draws)}
    return out


def evaluate(prepared: Prepared, plan: list[Period], refits, references_: dict, config: BacktestConfig):
    in_test = (prepared.row_day >= plan[0].first) & (prepared.row_day < plan[-1].stop)
    rows = np.flatnonzero(in_test)
    scores: dict[str, np.ndarray] = {}
    probability = {"heuristic": True, "-vol_63d": False, "-vol_21d": False, **dict.fromkeys(REFERENCES, True)}
    first_model = None
    for seed in range(config.seeds):
        name = config.resolved_type if config.seeds == 1 else f"{config.resolved_type} seed {seed}"
        score = np.full(len(prepared.values), np.nan)
        for i, p in enumerate(plan):
            period_rows = np.flatnonzero((prepared.row_day >= p.first) & (prepared.row_day < p.stop))
            model = HealthModel.from_bytes(refits.models[(i, seed)])
            score[period_rows] = health_history(prepared.values[period_rows], model, prepared.row_day[period_rows])
        scores[name], probability[name] = score, True
        first_model = first_model or name
    scores.update(references_)
    dates = prepared.dates[rows]
    target, drawdown = prepared.target[rows], prepared.drawdown[rows]
    daily = {
        name: daily_measures(dates, score[rows], drawdown, target, probability[name]) for name, score in scores.items()
    }
    table = {name: _summarise(measures, probability[name]) for name, measures in daily.items()}
    for name, measures in daily.items():
        if name not in (REFERENCE, BASE_RATE):
            gap = measures["spearman"] - daily[REFERENCE]["spearman"]
            table[name][f"spearman_minus_{REFERENCE}"] = mean_with_se(gap, HEALTH_HORIZON)
        if name != first_model:
            judged = ("log_loss", "brier") if probability[name] else ()
            judged += () if name == BASE_RATE else ("spearman",)  # a constant has no ranking
            table[name]["model_minus"] = model_minus(daily[first_model], measures, judged)
        if prepared.truth is not None:
            truth = daily_measures(dates, scores[name][rows], prepared.truth[rows], target, False)["spearman"]
            table[name]["truth_spearman"] = float(np.nanmean(truth)) if np.isfinite(truth).any() else None
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
