"""completeness: an ingest cut off at any write is healed by the next one, and validate sees it."""

from __future__ import annotations

import datetime as dt

import pytest

from trader_ml.cli.data import check_days_complete
from trader_ml.data import completeness
from trader_ml.data.ingest import ingest
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.errors import TraderMLError
from trader_ml.store import LocalStore, Store

from .conftest import TODAY, store_snapshot

# Four trading days: every kind of write boundary (the journal, each of a day's files, its marker,
# the step from one day to the next) and the whole store read as a mix, at every kill point.
START, END = dt.date(2003, 3, 3), dt.date(2003, 3, 6)
DAYS = 4
SOURCE = SyntheticSource(SyntheticParams(seed=1, n_symbols=2))


class Killed(Exception):
    """The process died at this write."""


class DiesAtWrite(LocalStore):
    """A local store whose k-th write never happens: the process is gone from there on. With
    ``count_deletes``, deletes count as writes too (a re-ingest deletes markers first)."""

    def __init__(self, root, kill_at: int, count_deletes: bool = False) -> None:
        super().__init__(root)
        self.kill_at, self.writes, self.count_deletes = kill_at, 0, count_deletes

    def _step(self, key: str) -> None:
        self.writes += 1
        if self.writes == self.kill_at:
            raise Killed(key)

    def write(self, key: str, data: bytes, durable: bool = False) -> None:
        self._step(key)
        super().write(key, data, durable)

    def delete(self, key: str) -> None:
        if self.count_deletes:
            self._step(key)
        super().delete(key)

    def write_many(self, items) -> int:
        return Store.write_many(self, items)  # one at a time, so "the k-th write" is well defined

    def delete_many(self, keys) -> None:
        Store.delete_many(self, keys)


def run(store: Store, start: dt.date | None = START, source=SOURCE) -> None:
    ingest(source, store, start, END, today=TODAY, log=lambda _: None)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    store = DiesAtWrite(tmp_path_factory.mktemp("clean"), kill_at=0)
    run(store)
    return store


def test_every_write_boundary_heals_and_validate_catches_it(clean, tmp_path):
    writes = clean.writes
    assert writes == 1 + DAYS * 6 + DAYS  # journal, 6 files a day, a marker a day (the journal's delete is no write)
    expected = store_snapshot(clean)
    for kill_at in range(1, writes + 1):
        store = DiesAtWrite(tmp_path / f"k{kill_at}", kill_at)
        with pytest.raises(Killed):
            run(store)
        if kill_at > 1:  # something was written: validate must see the cut
            with pytest.raises(TraderMLError, match="incomplete day"):
                check_days_complete(store)
        # The rerun, as a daily schedule runs it: no --start, it finds where to begin (with nothing
        # written at all there is nothing to find, and the user repeats the command).
        run(LocalStore(store.root), start=None if kill_at > 1 else START)
        assert store_snapshot(LocalStore(store.root)) == expected, f"killed at write {kill_at}"
        check_days_complete(LocalStore(store.root))


def test_a_complete_store_is_complete(clean):
    state = completeness.check(clean)
    assert len(state.complete) == DAYS and not state.incomplete and not state.legacy


def test_a_missing_file_of_a_marked_day_is_reported(clean, tmp_path):
    copy = LocalStore(tmp_path / "copy")
    copy.write_many((k, clean.read(k)) for k in clean.list(""))
    (victim,) = [k for k in copy.list("data/daily/") if "2003-03-05" in k and k.endswith("features.json")]
    copy.delete(victim)
    with pytest.raises(TraderMLError, match="2003-03-05: 1 of its files are missing"):
        check_days_complete(copy)


CHANGED = SyntheticSource(SyntheticParams(seed=2, n_symbols=2))  # other values for the same days


def test_a_reingest_cut_off_at_any_write_leaves_no_day_marked_whole_with_mixed_files(clean, tmp_path):
    """Re-ingesting stored days with other values and dying at any write or delete: every day is
    either whole (all old or all new files, marked) or reads as incomplete, to validate, to
    training's reader and to serving; the rerun finishes the job, as a clean re-ingest does."""
    from trader_ml.data.partitions import read_table
    from trader_ml.serving.daily import load_day

    old = store_snapshot(clean)
    LocalStore(tmp_path / "count").write_many(old.items())
    counter = DiesAtWrite(tmp_path / "count", kill_at=0, count_deletes=True)
    run(counter, source=CHANGED)
    steps, expected = counter.writes, store_snapshot(counter)
    # the journal, the markers deleted, the files, the markers, the journal deleted
    assert steps == 1 + DAYS + DAYS * 6 + DAYS + 1
    for kill_at in range(1, steps + 1):
        LocalStore(tmp_path / f"k{kill_at}").write_many(old.items())
        store = DiesAtWrite(tmp_path / f"k{kill_at}", kill_at, count_deletes=True)
        with pytest.raises(Killed):
            run(store, source=CHANGED)
        reader = LocalStore(store.root)
        state = completeness.check(reader)
        for day in state.complete:  # a day marked whole holds one run's files, never a mix
            files = [k for k in reader.list("") if f"date={day}/" in k and not k.startswith("data/complete/")]
            versions = {reader.read(k) == old[k] for k in files}
            assert len(versions) == 1, f"killed at step {kill_at}: {day} is marked whole but mixes old and new files"
        if state.incomplete:
            with pytest.raises(TraderMLError, match="incomplete day"):
                check_days_complete(reader)
            with pytest.raises(TraderMLError, match="incomplete"):
                read_table(reader, "context", today=TODAY)
            with pytest.raises(TraderMLError, match="incomplete"):
                load_day(reader, END.isoformat())
        else:  # died before changing a day, or after the last: all old or all new, and the user repeats the command
            assert {k: v for k, v in store_snapshot(reader).items() if k != completeness.JOURNAL_KEY} in (old, expected)
        run(reader, start=None if state.incomplete else START, source=CHANGED)  # after a cut: no --start needed
        assert store_snapshot(LocalStore(store.root)) == expected, f"killed at step {kill_at}"
        check_days_complete(LocalStore(store.root))
