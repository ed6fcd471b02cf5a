"""Which stored days are complete: each ingested day's marker lists its files, written last.

A day's files (context and feature partitions, the daily JSON views, the simulator's truth)
are written first, all of them, and only then the day's marker. So a day with a marker has
every file it lists, and a day with data but no marker was cut off mid-write: the next ingest
starts again from the oldest such day, and ``trader-ml validate --store`` reports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from trader_ml import safejson
from trader_ml.errors import NotFoundError
from trader_ml.schema import (
    DAILY_PREFIX,
    DAY_MARKER_PREFIX,
    INGEST_JOURNAL_KEY,
    TABLE_PREFIX,
    day_marker_key,
    is_day,
    partition_day,
)
from trader_ml.store import Store

DATA_PREFIXES = (*TABLE_PREFIX.values(), DAILY_PREFIX)
JOURNAL_KEY = INGEST_JOURNAL_KEY  # the days a running ingest is writing


def journal_item(days: list[str]) -> tuple[str, bytes]:
    """Written before a run's first data file and deleted after its last marker: while it is
    there, its days without a marker were cut off."""
    return JOURNAL_KEY, json.dumps({"days": sorted(days)}).encode()


def marked_days(store: Store) -> set[str]:
    return {d for d in (partition_day(k) for k in store.list(DAY_MARKER_PREFIX)) if d}


def unmark(store: Store, days: list[str]) -> None:
    """Delete the markers of ``days`` before their files are rewritten: a re-ingest cut off
    midway then leaves days that read as incomplete (and are redone), never days marked whole
    whose files are part old, part new."""
    store.delete_many([day_marker_key(d) for d in sorted(marked_days(store).intersection(days))])


def unfinished(store: Store, days: list[str]) -> list[str]:
    """The ``days`` without a marker, which readers must not use: an ingest is writing them or
    was cut off. A store from before markers (none, and no journal) has none."""
    marked = marked_days(store)
    if not marked and not store.exists(JOURNAL_KEY):
        return []
    return sorted(set(days) - marked)


def unfinished_message(store: Store, days: list[str]) -> str:
    return (
        f"{len(days)} stored day{'s are' if len(days) > 1 else ' is'} incomplete, from {days[0]}: an ingest is "
        f"writing {'them' if len(days) > 1 else 'it'} or was cut off, so {'their' if len(days) > 1 else 'its'} "
        f"files may mix old and new data; finish with trader-ml ingest --store {store.url} (no --start: it "
        "resumes there)"
    )


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
    journal = journal_days(store)
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
                marker = safejson.loads_object(listed[day], day_marker_key(day), ("files",))
                files = set(marker["files"])
            except (safejson.DamagedJSON, TypeError):
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


def journal_days(store: Store) -> list[str] | None:
    """The days an earlier run's journal names (None: no journal)."""
    try:
        days = safejson.loads_object(store.read(JOURNAL_KEY), store.describe(JOURNAL_KEY), ("days",))["days"]
    except NotFoundError:
        return None
    except safejson.DamagedJSON:
        return []  # a damaged journal still says a run was cut off; the data shows where
    return [d for d in days if is_day(d)] if isinstance(days, list) else []


def clear_stale_journal(store: Store) -> None:
    """A run cut off after its last marker left only its journal behind: nothing to redo."""
    journal = journal_days(store)
    if journal is not None and not check(store, verify_files=False).incomplete:
        store.delete(JOURNAL_KEY)
