"""A day's inputs for serving, read from the store's JSON views (``data/daily/``), and where
its predictions are written (``predictions/``). Standard library only."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from trader_ml.baselines import DEFAULT_RULES, min_baseline_days
from trader_ml.errors import NotFoundError, TraderMLError
from trader_ml.schema import DAILY_PREFIX, daily_key, partition_day, predictions_key
from trader_ml.store import Store

# The rules judge news tone against its mean over the last year, from windows that themselves
# need 21 + 14 days: with fewer rows than this the served baseline would differ from the one
# training and the backtest evaluate (which read the whole history).
HISTORY_DAYS = DEFAULT_RULES.tone_reference + min_baseline_days(DEFAULT_RULES)


@dataclass(frozen=True)
class DayInputs:
    date: str
    context_rows: list[dict]  # oldest first, the day's own row last
    feature_rows: list[dict]  # the day's rows, each with its symbol


def stored_days(store: Store) -> list[str]:
    return sorted({d for d in (partition_day(k) for k in store.list(DAILY_PREFIX)) if d})


def load_day(store: Store, day: str | None = None, history: int = HISTORY_DAYS) -> DayInputs:
    """The inputs of ``day`` (default: the newest stored day) and the context rows before it."""
    days = stored_days(store)
    if day is not None:
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            raise TraderMLError(f"invalid date {day!r}: expected YYYY-MM-DD") from None
        if day not in days:
            raise TraderMLError(_not_stored(store, day, days))
        days = [d for d in days if d <= day]
    if not days:
        raise TraderMLError(
            f"No historical data found in {store.describe(DAILY_PREFIX)}: run trader-ml ingest --store {store.url}"
        )
    window = days[-history:]
    try:
        contexts = [json.loads(b) for b in store.read_many([daily_key(d, "context.json") for d in window])]
        features = json.loads(store.read(daily_key(window[-1], "features.json")))
    except (NotFoundError, ValueError) as e:
        raise TraderMLError(
            f"the daily rows in {store.describe(DAILY_PREFIX)} are incomplete or damaged: {e}"
        ) from None
    rows = [{k: v for k, v in c.items() if k != "date"} for c in contexts]
    return DayInputs(window[-1], rows, features["rows"])


def _not_stored(store: Store, day: str, days: list[str]) -> str:
    where = store.describe(DAILY_PREFIX)
    if not days or day > days[-1]:
        newest = f"the newest stored day is {days[-1]}" if days else "nothing is stored yet"
        return f"no data for {day} in {where} ({newest}): ingest it first"
    if day < days[0]:
        return f"no data for {day} in {where}: the stored days begin on {days[0]}"
    before = [d for d in days if d < day]
    after = next(d for d in days if d > day)
    nearest = f"{before[-1]} and {after}"
    weekday = dt.date.fromisoformat(day).strftime("%A")
    return (
        f"{day} ({weekday}) is not a stored trading day (a weekend, a holiday or a day not ingested); "
        f"the nearest stored days are {nearest}: e.g. --date {before[-1]}"
    )


def write_predictions(store: Store, answer: dict) -> str:
    key = predictions_key(answer["date"])
    store.write(key, json.dumps(answer, indent=2).encode())
    return key
