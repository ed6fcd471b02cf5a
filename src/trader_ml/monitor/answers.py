"""The answers serving stored under ``predictions/``, as two frames: one regime row a day, one
health row per day and symbol, each with the model that gave it (trained or baseline, version,
fallback reason). A damaged file is counted and named, never silently dropped."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from trader_ml import safejson
from trader_ml.errors import TraderMLError
from trader_ml.schema import PREDICTIONS_PREFIX, REGIMES, is_day, predictions_key
from trader_ml.store import Store

REGIME_COLUMNS = ["date", "source", "version", "reason", *REGIMES]
HEALTH_COLUMNS = ["date", "symbol", "score", "source", "version", "reason"]


PORTFOLIO_COLUMNS = ["date", "symbol", "weight"]


@dataclass
class StoredAnswers:
    regime: pd.DataFrame  # REGIME_COLUMNS, one row a day
    health: pd.DataFrame  # HEALTH_COLUMNS, one row per day and symbol
    damaged: dict[str, str] = field(default_factory=dict)  # day -> why its file could not be read
    portfolio: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PORTFOLIO_COLUMNS))


SOURCES = safejson.OneOf("trained", "baseline")
PROBABILITY = safejson.Range(0.0, 1.0)
# What the monitor reads of an answer file (predict, the Lambda and predictions/ write more).
ANSWER_SHAPE = {
    "date": str,
    "regime": {"model_source": SOURCES, "model_version": str, "regime_probs": dict.fromkeys(REGIMES, PROBABILITY)},
    "health": safejson.Each({"health_score": PROBABILITY, "model_source": SOURCES, "model_version": str}),
}
FUTURE_DAYS = 7  # an answer dated this far past today is damage, not an early answer


def _reason(answer: dict) -> str | None:
    reason = answer.get("fallback_reason")
    return None if reason is None else str(reason)[:300]


def _regime_row(day: str, answer: dict) -> dict:
    probs = answer["regime_probs"]
    return {
        "date": day,
        "source": answer["model_source"],
        "version": answer["model_version"],
        "reason": _reason(answer),
        **{name: float(probs[name]) for name in REGIMES},
    }


def _health_rows(day: str, answers: dict) -> list[dict]:
    return [
        {
            "date": day,
            "symbol": str(symbol),
            "score": float(a["health_score"]),
            "source": a["model_source"],
            "version": a["model_version"],
            "reason": _reason(a),
        }
        for symbol, a in answers.items()
    ]


WEIGHT = safejson.Range(0.0, 1.0)
PORTFOLIO_SHAPE = {"weights": safejson.Each(WEIGHT)}  # answers from before the portfolio field have none


def _portfolio_rows(day: str, answer: dict, where: str) -> list[dict]:
    """The day's served target weights; none for an answer written before they were served."""
    if "portfolio" not in answer:
        return []
    part = safejson.check(answer["portfolio"], PORTFOLIO_SHAPE, f"{where}: portfolio")
    return [{"date": day, "symbol": str(symbol), "weight": float(w)} for symbol, w in part["weights"].items()]


def _answer_days(store: Store, since: dt.date | None, first: str | None, last: str) -> tuple[dict, dict]:
    """({key: day} of the answer files to read, {name: why} of those refused without reading:
    a file off the layout, a day the store cannot hold)."""
    days, damaged = {}, {}
    for key in store.list(PREDICTIONS_PREFIX):
        if not key.endswith("/predictions.json"):
            continue
        folder = key.removesuffix("/predictions.json")
        day = folder.rpartition("date=")[2]
        if not is_day(day) or predictions_key(day) != key:
            damaged[key] = "not where answers are written (predictions/date=YYYY-MM-DD/predictions.json)"
        elif (first is not None and day < first) or day > last:
            damaged[day] = f"dated {day}, outside the days this store can hold ({first} .. {last})"
        elif since is None or day >= since.isoformat():
            days[key] = day
    return days, damaged


def read_answers(
    store: Store, since: dt.date | None = None, first_day: str | None = None, today: dt.date | None = None
) -> StoredAnswers:
    """Every stored answer from ``since`` on (all when None), each file checked whole against
    ``ANSWER_SHAPE`` and dated from ``first_day`` (the store's first) to today plus a week."""
    last = ((today or dt.date.today()) + dt.timedelta(days=FUTURE_DAYS)).isoformat()
    days, damaged = _answer_days(store, since, first_day, last)
    keys = sorted(days)
    regime, health, portfolio = [], [], []
    for key, data in zip(keys, store.read_many(keys), strict=True):
        day = days[key]
        try:
            answer = safejson.loads_shaped(data, store.describe(key), ANSWER_SHAPE)
            if answer["date"] != day:
                raise TraderMLError(f"{store.describe(key)}: dated {answer['date'][:20]!r}, in the folder of {day}")
            # Every part read before any is kept: a half-damaged day is listed, never half scored.
            day_regime, day_health = _regime_row(day, answer["regime"]), _health_rows(day, answer["health"])
            day_portfolio = _portfolio_rows(day, answer, store.describe(key))
            regime.append(day_regime)
            health.extend(day_health)
            portfolio.extend(day_portfolio)
        except TraderMLError as e:
            damaged[day] = str(e)[:300]
    regime_frame = pd.DataFrame(regime, columns=REGIME_COLUMNS)
    health_frame = pd.DataFrame(health, columns=HEALTH_COLUMNS)
    portfolio_frame = pd.DataFrame(portfolio, columns=PORTFOLIO_COLUMNS)
    for frame in (regime_frame, health_frame, portfolio_frame):
        frame["date"] = pd.to_datetime(frame["date"])
    return StoredAnswers(regime_frame, health_frame, damaged, portfolio_frame)


def regime_probs(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(REGIMES)].to_numpy(dtype=float)
