"""A day's inputs for serving, read from the store's JSON views (``data/daily/``), and where
its predictions are written (``predictions/``). Standard library only."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

from trader_ml import safejson
from trader_ml.baselines import DEFAULT_RULES, min_baseline_days
from trader_ml.errors import NotFoundError, TraderMLError
from trader_ml.schema import (
    DAILY_PREFIX,
    DAY_MARKER_PREFIX,
    INGEST_JOURNAL_KEY,
    daily_key,
    is_day,
    partition_day,
    predictions_key,
)
from trader_ml.store import Store

log = logging.getLogger("trader_ml.serving")

# The rules judge news tone against its mean over the last year, from windows that themselves
# need 21 + 14 days: with fewer rows than this the served baseline would differ from the one
# training and the backtest evaluate (which read the whole history).
HISTORY_DAYS = DEFAULT_RULES.tone_reference + min_baseline_days(DEFAULT_RULES)


@dataclass(frozen=True)
class DayInputs:
    date: str
    context_rows: list[dict]  # oldest first, the day's own row last
    feature_rows: list[dict]  # the day's rows, each with its symbol
    days: tuple[str, ...] = ()  # the day of each context row


def stored_days(store: Store) -> list[str]:
    return sorted({d for d in (partition_day(k) for k in store.list(DAILY_PREFIX)) if d})


def incomplete_days(store: Store, days: list[str]) -> set[str]:
    """The ``days`` an ingest is writing or was cut off writing (no day marker): their files may
    be part old, part new, so serving reads none of them. A store from before markers (none,
    and no ingest journal) has every day complete."""
    marked = {d for d in (partition_day(k) for k in store.list(DAY_MARKER_PREFIX)) if d}
    if not marked and not store.exists(INGEST_JOURNAL_KEY):
        return set()
    return set(days) - marked


def load_day(store: Store, day: str | None = None, history: int = HISTORY_DAYS) -> DayInputs:
    """The inputs of ``day`` (default: the newest complete stored day) and the context rows before it."""
    if day is not None and not is_day(day):
        raise TraderMLError(f"invalid date {str(day)[:40]!r}: expected YYYY-MM-DD")
    days = stored_days(store)
    incomplete = incomplete_days(store, days)
    repair = f"finish it with trader-ml ingest --store {store.url} (no --start: it resumes there)"
    if day is not None:
        if day not in days:
            raise TraderMLError(_not_stored(store, day, days))
        days = [d for d in days if d <= day]
    elif incomplete:  # the newest complete day; newer ones are still being written
        complete = [d for d in days if d not in incomplete]
        if not complete:
            raise TraderMLError(
                f"all {len(days)} stored days are incomplete: an ingest is writing them or was cut off; {repair}"
            )
        newer = [d for d in days if d > complete[-1]]
        days = [d for d in days if d <= complete[-1]]
        if newer:
            log.warning("%d newest stored days are incomplete, from %s: %s", len(newer), newer[0], repair)
    if not days:
        raise TraderMLError(
            f"No historical data found in {store.describe(DAILY_PREFIX)}: run trader-ml ingest --store {store.url}"
        )
    window = days[-history:]
    cut = sorted(incomplete.intersection(window))
    if cut:
        raise TraderMLError(
            f"{len(cut)} of the days {window[-1]} needs ({cut[0]} first) are incomplete: an ingest is writing "
            f"them or was cut off; {repair}"
        )
    try:
        contexts = [
            _context_row(b, store.describe(daily_key(d, "context.json")), d)
            for d, b in zip(window, store.read_many([daily_key(d, "context.json") for d in window]), strict=True)
        ]
        where = store.describe(daily_key(window[-1], "features.json"))
        features = safejson.loads_object(store.read(daily_key(window[-1], "features.json")), where, ("rows",))
    except (NotFoundError, safejson.DamagedJSON) as e:
        raise TraderMLError(
            f"the daily rows in {store.describe(DAILY_PREFIX)} are incomplete or damaged: {e}"
        ) from None
    rows = features["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TraderMLError(f"{where}: rows is not a list of objects (damaged)")
    return DayInputs(window[-1], contexts, rows, tuple(window))


def _context_row(data: bytes, where: str, day: str) -> dict:
    """A day's context.json as a row: an object dated ``day``, its values checked later with
    the other rows (as_matrix)."""
    row = safejson.loads_object(data, where, ("date",))
    if row["date"] != day:
        raise safejson.DamagedJSON(f"{where}: dated {str(row['date'])[:20]!r}, not {day} (damaged)")
    return {k: v for k, v in row.items() if k != "date"}


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
