"""The bundled real history: S&P 500 index 1990-2022 standing in for SPY, and 20 large caps.

No yields, credit or VIX ETFs, TLT or news tone are in it: those context columns stay NaN.
Twenty large caps that all still exist are a small, survivor-biased universe.
"""

from __future__ import annotations

from importlib.resources import files

from trader_ml.data.sources.csv import CsvSource
from trader_ml.schema import SPY

BUNDLED = files("trader_ml") / "bundled"


class SampleSource(CsvSource):
    name = "sample"

    def __init__(self) -> None:
        super().__init__(
            [BUNDLED / "sp500_index.csv.gz", BUNDLED / "sp500_stocks.csv.gz"],  # type: ignore[list-item]
            rename={"SP500": SPY},
        )
