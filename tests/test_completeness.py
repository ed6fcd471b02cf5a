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

START, END = dt.date(2003, 3, 3), dt.date(2003, 3, 14)  # ten trading days
SOURCE = SyntheticSource(SyntheticParams(seed=1, n_symbols=2))


class Killed(Exception):
    """The process died at this write."""


class DiesAtWrite(LocalStore):
    """A local store whose k-th write never happens: the process is gone from there on."""

    def __init__(self, root, kill_at: int) -> None:
        super().__init__(root)
        self.kill_at, self.writes = kill_at, 0

    def write(self, key: str, data: bytes, durable: bool = False) -> None:
        self.writes += 1
        if self.writes == self.kill_at:
            raise Killed(key)
        super().write(key, data, durable)

    def write_many(self, items) -> int:
        return Store.write_many(self, items)  # one at a time, so "the k-th write" is well defined


def run(store: Store, start: dt.date | None = START) -> None:
    ingest(SOURCE, store, start, END, today=TODAY, log=lambda _: None)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    store = DiesAtWrite(tmp_path_factory.mktemp("clean"), kill_at=0)
    run(store)
    return store


def test_every_write_boundary_heals_and_validate_catches_it(clean, tmp_path):
    writes = clean.writes
    assert writes == 1 + 10 * 6 + 10  # journal, 6 files a day, a marker a day (the journal's delete is no write)
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
    assert len(state.complete) == 10 and not state.incomplete and not state.legacy


def test_a_missing_file_of_a_marked_day_is_reported(clean, tmp_path):
    copy = LocalStore(tmp_path / "copy")
    copy.write_many((k, clean.read(k)) for k in clean.list(""))
    (victim,) = [k for k in copy.list("data/daily/") if "2003-03-05" in k and k.endswith("features.json")]
    copy.delete(victim)
    with pytest.raises(TraderMLError, match="2003-03-05: 1 of its files are missing"):
        check_days_complete(copy)
