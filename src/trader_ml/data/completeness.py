"""Which stored days are complete: each ingested day's marker lists its files, written last.

A day's files (context and feature partitions, the daily JSON views, the simulator's truth)
are written first, all of them, and only then the day's marker. So a day with a marker has
every file it lists, and a day with data but no marker was cut off mid-write: the next ingest
starts again from the oldest such day, and ``trader-ml validate --store`` reports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from trader_ml.errors import NotFoundError
from trader_ml.schema import DAILY_PREFIX, DAY_MARKER_PREFIX, TABLE_PREFIX, day_marker_key, partition_day
from trader_ml.store import Store

DATA_PREFIXES = (*TABLE_PREFIX.values(), DAILY_PREFIX)
JOURNAL_KEY = f"{DAY_MARKER_PREFIX}ingest-in-progress.json"  # the days a running ingest is writing


def journal_item(days: list[str]) -> tuple[str, bytes]:
    """Written before a run's first data file and deleted after its last marker: while it is
    there, its days without a marker were cut off."""
    return JOURNAL_KEY, json.dumps({"days": sorted(days)}).encode()


def marker_items(keys_by_day: dict[str, list[str]]) -> list[tuple[str, bytes]]:
    """The marker of each day: the keys written for it."""
    return [
        (day_marker_key(day), json.dumps({"date": day, "files": sorted(keys)}).encode())
        for day, keys in sorted(keys_by_day.items())
    ]


@dataclass(frozen=True)
class Completeness:
    complete: list[str]  # days with a marker whose files are all there
    incomplete: dict[str, str]  # day -> what is wrong with it
    legacy: bool  # data but no marker at all: written before markers existed

    @property
    def oldest_incomplete(self) -> str | None:
        return min(self.incomplete) if self.incomplete else None


def _days(keys: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key in keys:
        day = partition_day(key)
        if day is not None:
            out.setdefault(day, set()).add(key)
    return out


def check(store: Store, verify_files: bool = True) -> Completeness:
    """Sort the stored days into complete and incomplete (with the reason)."""
    data = _days([k for prefix in DATA_PREFIXES for k in store.list(prefix)])
    markers = sorted(d for d in _days(store.list(DAY_MARKER_PREFIX)))
    journal = _journal_days(store)
    if not markers and journal is None:  # a store from before markers: every context day needs its views
        context = {d for d, keys in data.items() if any(k.startswith(TABLE_PREFIX["context"]) for k in keys)}
        views = {d for d, keys in data.items() if any(k.startswith(DAILY_PREFIX) for k in keys)}
        gaps = {d: "has context rows but no daily views" for d in context - views}
        gaps |= {d: "has daily views but no context partition" for d in views - context}
        return Completeness(sorted(context & views), gaps, legacy=bool(data))
    incomplete: dict[str, str] = {}
    complete = []
    listed = (
        dict(zip(markers, store.read_many([day_marker_key(d) for d in markers]), strict=True)) if verify_files else {}
    )
    for day in markers:
        if verify_files:
            try:
                files = set(json.loads(listed[day])["files"])
            except (ValueError, KeyError, TypeError):
                incomplete[day] = f"its marker {day_marker_key(day)} is damaged"
                continue
            missing = sorted(files - data.get(day, set()))
            if missing:
                incomplete[day] = f"{len(missing)} of its files are missing, e.g. {missing[0]}"
                continue
        complete.append(day)
    for day in sorted((set(data) | set(journal or ())) - set(markers)):
        kinds = sorted({key.rsplit("/date=", 1)[0] for key in data.get(day, ())}) or ["nothing"]
        incomplete[day] = f"written only in part ({', '.join(kinds)}) and never marked complete"
    return Completeness(complete, incomplete, legacy=False)


def _journal_days(store: Store) -> list[str] | None:
    try:
        return list(json.loads(store.read(JOURNAL_KEY))["days"])
    except NotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return []  # a damaged journal still says a run was cut off; the data shows where


def clear_stale_journal(store: Store) -> None:
    """A run cut off after its last marker left only its journal behind: nothing to redo."""
    journal = _journal_days(store)
    if journal is not None and not check(store, verify_files=False).incomplete:
        store.delete(JOURNAL_KEY)
