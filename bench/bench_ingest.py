"""Times ingesting the whole bundled sample and 10 years x 200 synthetic symbols (target: < 60 s each).

    python bench/bench_ingest.py [--runs 3]

Each run writes a fresh local store in a temporary directory; the median of the runs is the figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time

from trader_ml.data.ingest import ingest
from trader_ml.data.sources.sample import SampleSource
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.store import LocalStore

CASES = {
    "sample (33 years, SPY + 20 stocks)": (SampleSource, None, None),
    "synthetic (10 years, 200 symbols)": (
        lambda: SyntheticSource(SyntheticParams(seed=0, n_symbols=200)),
        dt.date(2012, 1, 1),
        dt.date(2021, 12, 31),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name, (make, start, end) in CASES.items():
        seconds = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                began = time.perf_counter()
                report = ingest(make(), LocalStore(tmp), start, end, log=lambda _: None)
                seconds.append(time.perf_counter() - began)
        print(
            f"{name}: median {statistics.median(seconds):.1f} s over {args.runs} runs "
            f"(min {min(seconds):.1f}, max {max(seconds):.1f}); "
            f"{report.days} days, {report.feature_rows} feature rows"
        )


if __name__ == "__main__":
    main()
