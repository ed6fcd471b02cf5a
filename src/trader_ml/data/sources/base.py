"""The one interface every market-data source implements, and the raw series it returns."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Protocol

import pandas as pd

from trader_ml.errors import SourceError
from trader_ml.schema import CONTEXT_TICKERS


@dataclass(frozen=True)
class SourceOptions:
    """What the ``ingest`` flags say about sources; each source reads what it needs."""

    seed: int = 0  # synthetic: the simulator's seed and universe (SyntheticParams reads these)
    n_symbols: int = 50
    market: str = "default"  # synthetic: one of synthetic.MARKETS
    symbols: tuple[str, ...] = ()
    prices: tuple[str, ...] = ()
    gdelt_query: str | None = None


@dataclass(frozen=True)
class RawMarket:
    """Raw daily series from one or more sources; features are computed from these alone.

    ``closes``: adjusted closes, DatetimeIndex of days (ascending) x ticker columns. SPY, HYG,
    IEF, VIXY and TLT feed the context row; ``symbols`` name the per-asset universe.
    ``yield_slope`` (10Y-2Y, percentage points) and ``news_tone`` are indexed by the day they
    were observed. ``truth_*`` are the simulator's hidden states (synthetic source only).
    """

    closes: pd.DataFrame = field(default_factory=pd.DataFrame)
    symbols: tuple[str, ...] = ()
    yield_slope: pd.Series | None = None
    news_tone: pd.Series | None = None
    truth_regime: pd.Series | None = None  # regime index per day
    truth_health: pd.DataFrame | None = None  # health-state index, days x symbols

    def merge(self, other: RawMarket) -> RawMarket:
        """Combine sources: prices side by side, series taken from whichever has them."""
        closes = self.closes
        if not other.closes.empty:
            closes = (
                other.closes
                if closes.empty
                else closes.join(other.closes[[c for c in other.closes if c not in closes]], how="outer")
            )
        return replace(
            self,
            closes=closes,
            symbols=tuple(dict.fromkeys(self.symbols + other.symbols)),
            yield_slope=self.yield_slope if self.yield_slope is not None else other.yield_slope,
            news_tone=self.news_tone if self.news_tone is not None else other.news_tone,
            truth_regime=self.truth_regime if self.truth_regime is not None else other.truth_regime,
            truth_health=self.truth_health if self.truth_health is not None else other.truth_health,
        )


class Source(Protocol):
    """A market-data source. ``fetch`` returns the raw series for days in [start, end]."""

    name: str

    def default_range(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """The full span this source can deliver, for a first backfill."""
        ...

    def fetch(self, start: dt.date, end: dt.date) -> RawMarket: ...


def years_before(day: dt.date, years: int) -> dt.date:
    """The same day ``years`` earlier; 29 February becomes 28 February in a year without one."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def wide_closes(series: dict[str, pd.Series]) -> pd.DataFrame:
    """Ticker -> close series, as one ascending date x ticker frame."""
    if not series:
        return pd.DataFrame()
    frame = pd.concat(series, axis=1).sort_index()
    frame.index = pd.DatetimeIndex(frame.index).normalize()
    frame.index.name = "date"
    return frame


def universe(tickers: list[str]) -> tuple[str, ...]:
    """The per-asset symbols among ``tickers``: all but the context ETFs (SPY stays out too)."""
    symbols = tuple(t for t in tickers if t not in CONTEXT_TICKERS)
    if len(set(symbols)) != len(symbols):
        raise SourceError(f"duplicate symbols in {list(symbols)}")
    return symbols
