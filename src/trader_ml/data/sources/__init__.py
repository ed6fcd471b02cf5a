"""Market-data sources, and ``make_source`` that builds one from a ``--source`` spec.

A spec names one source or several joined by commas (``yahoo,fred,gdelt``): the first brings
the prices, the others add the series they have (the yield slope, the news tone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import reduce

from trader_ml.data.sources.base import RawMarket, Source, SourceOptions
from trader_ml.data.sources.http import Getter, http_get
from trader_ml.errors import SourceError

SOURCE_NAMES = ("synthetic", "sample", "csv", "yahoo", "fred", "gdelt")


class CompositeSource:
    """Several sources fetched over the same days and merged, the first one's span leading."""

    def __init__(self, parts: Sequence[Source]) -> None:
        self.parts = list(parts)
        self.name = ",".join(p.name for p in self.parts)

    def default_range(self, today: dt.date) -> tuple[dt.date, dt.date]:
        return self.parts[0].default_range(today)

    def fetch(self, start: dt.date, end: dt.date) -> RawMarket:
        return reduce(RawMarket.merge, (p.fetch(start, end) for p in self.parts))


def _one(name: str, options: SourceOptions, get: Getter) -> Source:
    if name == "synthetic":
        from trader_ml.data.sources.synthetic import SyntheticSource, market_params

        return SyntheticSource(market_params(options.market, options.seed, options.n_symbols))
    if name == "sample":
        from trader_ml.data.sources.sample import SampleSource

        return SampleSource()
    if name == "csv":
        from trader_ml.data.sources.csv import CsvSource

        return CsvSource(options.prices)
    if name == "yahoo":
        from trader_ml.data.sources.yahoo import YahooSource

        if not options.symbols:
            raise SourceError("the yahoo source needs --symbols, e.g. --symbols AAPL,MSFT")
        return YahooSource(options.symbols, get=get)
    if name == "fred":
        from trader_ml.data.sources.fred import FredSource

        return FredSource(get=get)
    if name == "gdelt":
        from trader_ml.data.sources.gdelt import DEFAULT_QUERY, GdeltSource

        return GdeltSource(options.gdelt_query or DEFAULT_QUERY, get=get)
    raise SourceError(f"unknown source {name!r}: choose from {', '.join(SOURCE_NAMES)}")


def make_source(spec: str, options: SourceOptions | None = None, get: Getter = http_get) -> Source:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise SourceError("--source is empty")
    parts = [_one(n, options or SourceOptions(), get) for n in names]
    return parts[0] if len(parts) == 1 else CompositeSource(parts)


__all__ = ["RawMarket", "Source", "SourceOptions", "make_source", "SOURCE_NAMES"]
