"""The benchmarks' data: 10 synthetic years x 200 symbols, and the bundled sample, each in a fresh local store."""

from __future__ import annotations

import datetime as dt

from trader_ml.data.ingest import ingest
from trader_ml.data.sources.sample import SampleSource
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.store import LocalStore


def synthetic_store(
    folder: str,
    seed: int = 0,
    symbols: int = 200,
    start: dt.date = dt.date(2012, 1, 1),
    end: dt.date = dt.date(2021, 12, 31),
) -> LocalStore:
    store = LocalStore(f"{folder}/synthetic")
    source = SyntheticSource(SyntheticParams(seed=seed, n_symbols=symbols))
    ingest(source, store, start, end, log=lambda _: None)
    return store


def sample_store(folder: str) -> LocalStore:
    store = LocalStore(f"{folder}/sample")
    ingest(SampleSource(), store, log=lambda _: None)
    return store
