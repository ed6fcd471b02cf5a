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
from trader_ml.schema import PREDICTIONS_PREFIX, REGIMES, is_day
from trader_ml.store import Store

REGIME_COLUMNS = ["date", "source", "version", "reason", *REGIMES]
HEALTH_COLUMNS = ["date", "symbol", "score", "source", "version", "reason"]


@dataclass
class StoredAnswers:
    regime: pd.DataFrame  # REGIME_COLUMNS, one row a day
    health: pd.DataFrame  # HEALTH_COLUMNS, one row per day and symbol
    damaged: dict[str, str] = field(default_factory=dict)  # day -> why its file could not be read


def _regime_row(day: str, answer: dict) -> dict:
    probs = answer["regime_probs"]
    return {
        "date": day,
        "source": str(answer["model_source"]),
        "version": str(answer["model_version"]),
        "reason": answer.get("fallback_reason"),
        **{name: float(probs[name]) for name in REGIMES},
    }


def _health_rows(day: str, answers: dict) -> list[dict]:
    return [
        {
            "date": day,
            "symbol": str(symbol),
            "score": float(a["health_score"]),
            "source": str(a["model_source"]),
            "version": str(a["model_version"]),
            "reason": a.get("fallback_reason"),
        }
        for symbol, a in answers.items()
    ]


def read_answers(store: Store, since: dt.date | None = None) -> StoredAnswers:
    """Every stored answer from ``since`` on (all when None)."""
    days = {}
    for key in store.list(PREDICTIONS_PREFIX):
        folder, _, name = key.rpartition("/")
        day = folder.rpartition("date=")[2]
        if name == "predictions.json" and is_day(day) and (since is None or day >= since.isoformat()):
            days[key] = day
    keys = sorted(days)
    regime, health, damaged = [], [], {}
    for key, data in zip(keys, store.read_many(keys), strict=True):
        day = days[key]
        try:
            answer = safejson.loads_object(data, store.describe(key), ("date", "regime", "health"))
            if answer["date"] != day:
                raise TraderMLError(f"dated {str(answer['date'])[:20]!r}")
            # Both parts parsed before either is kept: a half-damaged day is listed, never half scored.
            day_regime, day_health = _regime_row(day, answer["regime"]), _health_rows(day, answer["health"])
            regime.append(day_regime)
            health.extend(day_health)
        except (TraderMLError, KeyError, TypeError, ValueError, AttributeError) as e:
            damaged[day] = f"{type(e).__name__}: {e}"[:200]
    regime_frame = pd.DataFrame(regime, columns=REGIME_COLUMNS)
    health_frame = pd.DataFrame(health, columns=HEALTH_COLUMNS)
    for frame in (regime_frame, health_frame):
        frame["date"] = pd.to_datetime(frame["date"])
    return StoredAnswers(regime_frame, health_frame, damaged)


def regime_probs(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(REGIMES)].to_numpy(dtype=float)
