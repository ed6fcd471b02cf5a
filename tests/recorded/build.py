"""Builds the recorded responses in this folder (run once; the outputs are committed).

This machine has no internet, so these are not captures: they are small bodies written in the
exact shape the live endpoints answer with (Yahoo chart v8 JSON, FRED fredgraph CSV, GDELT DOC
2.0 timelinetone JSON), over a real trading calendar (Jan-May 2024, US market holidays
removed), with seeded prices. Quirks of the real answers are kept on purpose: Yahoo's
``adjclose`` differs from ``close`` and has a null; FRED writes '.' on holidays; GDELT dates
are ``YYYYMMDDTHHMMSSZ``.
"""

import datetime as dt
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
HOLIDAYS = {"2024-01-01", "2024-01-15", "2024-02-19", "2024-03-29", "2024-05-27"}
DAYS = [
    d
    for d in np.arange("2024-01-01", "2024-06-01", dtype="datetime64[D]")
    if np.is_busday(d) and str(d) not in HOLIDAYS
]
START = {"SPY": 470.0, "HYG": 77.0, "IEF": 95.0, "VIXY": 14.0, "TLT": 98.0, "AAPL": 185.0}


def chart(ticker: str, rng: np.random.Generator) -> dict:
    closes = START[ticker] * np.exp(np.cumsum(rng.normal(0, 0.012, len(DAYS))))
    adjusted = closes * 0.98  # dividends paid later scale history down
    stamps = [int(dt.datetime.fromisoformat(f"{d}T14:30:00+00:00").timestamp()) for d in DAYS]
    adj = [round(float(a), 6) for a in adjusted]
    if ticker == "AAPL":
        adj[5] = None  # Yahoo leaves gaps as null
    return {
        "chart": {
            "result": [
                {
                    "meta": {
                        "currency": "USD",
                        "symbol": ticker,
                        "exchangeName": "PCX",
                        "instrumentType": "ETF",
                        "gmtoffset": -18000,
                        "timezone": "EST",
                        "exchangeTimezoneName": "America/New_York",
                    },
                    "timestamp": stamps,
                    "indicators": {
                        "quote": [{"close": [round(float(c), 6) for c in closes]}],
                        "adjclose": [{"adjclose": adj}],
                    },
                }
            ],
            "error": None,
        }
    }


def main() -> None:
    rng = np.random.default_rng(2024)
    for ticker in START:
        (HERE / f"yahoo_{ticker}.json").write_text(json.dumps(chart(ticker, rng)))
    (HERE / "yahoo_not_found.json").write_text(
        json.dumps(
            {
                "chart": {
                    "result": None,
                    "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
                }
            }
        )
    )
    lines = ["observation_date,T10Y2Y"]
    slope = -0.35
    for d in np.arange("2023-12-15", "2024-06-01", dtype="datetime64[D]"):
        if not np.is_busday(d):
            continue
        slope += rng.normal(0, 0.03)
        lines.append(f"{d},{'.' if str(d) in HOLIDAYS else f'{slope:.2f}'}")
    (HERE / "fred_T10Y2Y.csv").write_text("\n".join(lines) + "\n")
    data = [
        {"date": f"{str(d).replace('-', '')}T000000Z", "value": round(float(rng.normal(-1.2, 0.4)), 4)}
        for d in np.arange("2023-12-25", "2024-06-01", dtype="datetime64[D]")
    ]
    (HERE / "gdelt_tone.json").write_text(
        json.dumps(
            {
                "query_details": {"title": '(economy OR "stock market")', "date_resolution": "day"},
                "timeline": [{"series": "Average Tone", "data": data}],
            }
        )
    )
    (HERE / "gdelt_error.txt").write_text("Your search contained a keyword that was too short.\n")


if __name__ == "__main__":
    main()
