"""The daily pipeline: fetch a source, compute context and feature rows, validate, write partitions.

Everything is computed, validated and encoded in memory before the first write, so bad input
leaves the store exactly as it was. Each partition is then written atomically; re-running a
day replaces that day's partitions.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader_ml.data import completeness, suspect
from trader_ml.data.features import LOOKBACK_CALENDAR_DAYS, context_rows, feature_rows, trading_day_closes
from trader_ml.data.partitions import encode_days, stored_days
from trader_ml.data.sources import Source
from trader_ml.data.sources.base import RawMarket
from trader_ml.data.validation import validate_context, validate_features
from trader_ml.errors import SourceError, TraderMLError
from trader_ml.schema import (
    ASSET_FEATURES,
    CONTEXT_FEATURES,
    HEALTH_STATES,
    LONG_VOL_FEATURES,
    REGIMES,
    SPY,
    daily_key,
    partition_day,
    partition_key,
)
from trader_ml.store import Store


@dataclass(frozen=True)
class IngestReport:
    source: str
    store: str
    start: dt.date | None  # first and last trading day written; None when nothing was new
    end: dt.date | None
    days: int
    feature_rows: int
    symbols: int
    skipped_rows: int  # (day, symbol) pairs without a full feature window
    unavailable: tuple[str, ...]  # context columns this source leaves NaN
    seconds: float
    suspect: tuple[str, ...] = ()  # one line per suspect day among those checked (data/suspect.py)

    def warnings(self) -> list[str]:
        return [f"warning: suspect day {line}" for line in self.suspect]

    def summary(self) -> str:
        if not self.days:
            return f"{self.store}: already up to date with {self.source}; nothing written"
        lines = [
            f"ingested {self.days} trading days {self.start} .. {self.end} from {self.source} into {self.store}",
            f"  {self.feature_rows} feature rows for {self.symbols} symbols"
            + (
                f"; {self.skipped_rows} rows skipped (under 64 closes of history or a missing close)"
                if self.skipped_rows
                else ""
            ),
        ]
        if self.unavailable:
            lines.append(f"  unavailable from this source, left NaN: {', '.join(self.unavailable)}")
        if self.suspect:
            lines.append(
                f"  {len(self.suspect)} suspect day(s) stored and marked; training leaves them out until "
                f"re-ingested or accepted (trader-ml validate --store {self.store} lists them)"
            )
        lines.append(f"  {self.seconds:.1f} s")
        return "\n".join(lines)


def _truth_frames(raw: RawMarket, days: pd.DatetimeIndex) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    if raw.truth_regime is None or raw.truth_health is None:
        return None, None
    regime = raw.truth_regime.reindex(days)
    regimes = pd.DataFrame({"date": days, "regime": np.asarray(REGIMES, dtype=object)[regime.to_numpy(dtype=int)]})
    health = raw.truth_health.reindex(days)
    health = health[sorted(health.columns)]
    states = np.asarray(HEALTH_STATES, dtype=object)[health.to_numpy(dtype=int)]
    healths = pd.DataFrame(
        {
            "date": np.repeat(days.to_numpy(), health.shape[1]),
            "symbol": np.tile(np.asarray(health.columns, dtype=object), len(days)),
            "health_state": states.reshape(-1),
        }
    )
    return regimes, healths


def daily_json(context: pd.DataFrame, features: pd.DataFrame) -> list[tuple[str, bytes]]:
    """Each day's context row and feature rows as JSON files (NaN as null), for serving."""
    context_values = context[list(CONTEXT_FEATURES)].to_numpy(dtype=float).tolist()
    names = (*ASSET_FEATURES, *LONG_VOL_FEATURES)
    feature_values = features[list(names)].to_numpy(dtype=float).tolist() if len(features) else []
    symbols = features["symbol"].astype(str).tolist()
    feature_days = features["date"].to_numpy().astype("datetime64[D]")
    starts = {d: i for i, d in reversed(list(enumerate(feature_days)))}  # first row of each day
    out = []
    for row, day in zip(context_values, context["date"].to_numpy().astype("datetime64[D]"), strict=True):
        text = str(day)
        values = {c: (None if v != v else v) for c, v in zip(CONTEXT_FEATURES, row, strict=True)}  # v != v: NaN
        rows = []
        i = starts.get(day)
        while i is not None and i < len(feature_days) and feature_days[i] == day:
            # A long-memory column not yet known is left out of the row, not written as null.
            present = {c: v for c, v in zip(names, feature_values[i], strict=True) if v == v}
            rows.append({"symbol": symbols[i], **present})
            i += 1
        out.append((daily_key(text, "context.json"), json.dumps({"date": text, **values}).encode()))
        out.append((daily_key(text, "features.json"), json.dumps({"date": text, "rows": rows}).encode()))
    return out


def resolve_range(
    source: Source, store: Store, start: dt.date | None, end: dt.date | None, today: dt.date
) -> tuple[dt.date, dt.date, bool]:
    """(start, end, incremental): without --start, continue from the newest stored day."""
    default_start, default_end = source.default_range(today)
    end = end or default_end
    if end > today:
        raise TraderMLError(f"--end {end} is in the future (today is {today})")
    if start is not None:
        if start > end:
            raise TraderMLError(f"--start {start} is after --end {end}")
        return start, end, False
    state = completeness.check(store, verify_files=False)
    if state.oldest_incomplete is not None:  # a run was cut off: redo from its oldest unfinished day
        return dt.date.fromisoformat(state.oldest_incomplete), end, True
    days = state.complete or (stored_days(store, "context") if state.legacy else [])
    if days:
        return dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1), end, True
    return default_start, end, False


def ingest(
    source: Source,
    store: Store,
    start: dt.date | None = None,
    end: dt.date | None = None,
    today: dt.date | None = None,
    log: Callable[[str], None] = print,
) -> IngestReport:
    """Fetch ``source`` for [start, end] and write its context, feature and truth partitions."""
    began = time.perf_counter()
    today = today or dt.date.today()
    completeness.clear_stale_journal(store)
    start, end, incremental = resolve_range(source, store, start, end, today)

    def nothing_new() -> IngestReport:
        return IngestReport(source.name, store.url, None, None, 0, 0, 0, 0, (), time.perf_counter() - began)

    if start > end:
        return nothing_new()
    log(f"fetching {source.name} for {start} .. {end}")
    rows = _fetch_rows(source, start, end, incremental, today)
    if rows is None:
        return nothing_new()
    raw, context, features, skipped = rows
    days = pd.DatetimeIndex(context["date"])
    items = _partition_items(raw, context, features, days)
    written = [d.date().isoformat() for d in days]
    before = _day_before(store, raw, days)
    checked = [*([before] if before else []), *written]
    found = suspect.find(trading_day_closes(raw), raw.symbols, pd.DatetimeIndex(checked))
    marks, stale_marks = suspect.mark_items(store, found, written, before)
    log(f"writing {len(items)} partitions to {store.url}")
    _write_days(store, items, marks, stale_marks)
    unavailable = tuple(c for c in CONTEXT_FEATURES if context[c].isna().all())
    return IngestReport(
        source=source.name,
        store=store.url,
        start=days[0].date(),
        end=days[-1].date(),
        days=len(days),
        feature_rows=len(features),
        symbols=int(features["symbol"].nunique()) if len(features) else 0,
        skipped_rows=skipped,
        unavailable=unavailable,
        seconds=time.perf_counter() - began,
        suspect=tuple(suspect.Mark(d, tuple(found[d]), None).line() for d in checked if d in found),
    )


def _day_before(store: Store, raw, days: pd.DatetimeIndex) -> str | None:
    """The stored trading day before the first one written: a jump that this run's first day
    undoes is known only now."""
    closes = trading_day_closes(raw)
    before = closes.index[closes.index < days[0]]
    day = before[-1].date().isoformat() if len(before) else None
    return day if day is not None and store.exists(partition_key("context", day)) else None


def _fetch_rows(source: Source, start: dt.date, end: dt.date, incremental: bool, today: dt.date):
    """(raw market, context rows, feature rows, rows skipped) from ``start``, validated; None
    when an incremental run finds no new trading day."""
    raw = source.fetch(start - dt.timedelta(days=LOOKBACK_CALENDAR_DAYS), end)
    if SPY not in raw.closes or raw.closes[SPY].dropna().empty:
        raise SourceError(
            f"{source.name} brought no {SPY} prices for {start} .. {end}; "
            "fred and gdelt add series to a price source, e.g. --source yahoo,fred,gdelt"
        )
    since = pd.Timestamp(start)
    context = context_rows(raw)
    context = context[context["date"] >= since].reset_index(drop=True)
    if context.empty:
        if incremental:
            return None
        raise SourceError(f"{source.name} has no trading days with 22 closes of SPY history in {start} .. {end}")
    features, skipped = feature_rows(raw, since=since)
    context = validate_context(context, f"context rows from {source.name}", today)
    if not features.empty:
        features = validate_features(features, f"feature rows from {source.name}", today)
    return raw, context, features, skipped


def _partition_items(raw, context: pd.DataFrame, features: pd.DataFrame, days: pd.DatetimeIndex) -> list:
    """Every file of every day: context, features, the daily JSON and, from the simulator, its truth."""
    regimes, healths = _truth_frames(raw, days)
    items = encode_days("context", context)
    if not features.empty:
        items += encode_days("features", features)
    items += daily_json(context, features)
    if regimes is not None and healths is not None:
        items += encode_days("truth_regime", regimes) + encode_days("truth_health", healths)
    return items


def _write_days(store: Store, items: list, marks: list = (), deletes: list[str] = ()) -> None:
    """The journal, then the days unmarked, their files, their markers, and the journal cleared:
    a run killed at any write leaves no marked day that mixes two runs' files."""
    by_day: dict[str, list[str]] = {}
    for key, _ in items:
        by_day.setdefault(partition_day(key), []).append(key)
    # Days an earlier run was cut off in, still unmarked, that this one does not redo stay in the journal.
    leftover = sorted(set(completeness.journal_days(store) or ()) - set(by_day))
    leftover = sorted(set(leftover) - completeness.marked_days(store)) if leftover else []
    store.write(*completeness.journal_item([*by_day, *leftover]))  # what this run is about to write ...
    completeness.unmark(store, list(by_day))  # ... its days no longer whole (a re-ingest changes them) ...
    store.write_many([*items, *marks])  # ... every data file of every day, suspect days' marks ...
    store.delete_many(list(deletes))  # ... and the marks of days now clean ...
    store.write_many(completeness.marker_items(by_day))  # ... then each day's marker ...
    if leftover:
        store.write(*completeness.journal_item(leftover))
    else:
        store.delete(completeness.JOURNAL_KEY)  # ... and the run is whole
