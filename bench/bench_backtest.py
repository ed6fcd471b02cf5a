"""Walk-forward backtests: the figures of docs/benchmarks.md, and how long they take.

    python bench/bench_backtest.py regime-sample [--runs 3] [--model-type gru]
    python bench/bench_backtest.py regime-synthetic [--seeds 0,1,2,3,4]
    python bench/bench_backtest.py health-sample [--runs 3] [--model-type autoencoder]
    python bench/bench_backtest.py health-synthetic [--symbols 200] [--window-days 1096]

Each run starts from an empty refit cache (a fresh store), so its time is the whole backtest:
every refit trained, exported and answered through ONNX. Prints each run's summary table and
the median time over runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time

from stores import sample_store  # bench/stores.py

from trader_ml.backtest import BacktestConfig, run_backtest
from trader_ml.data.ingest import ingest
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.pages.backtest_text import summary_text
from trader_ml.store import LocalStore

JOBS = {
    # name: (model, start, end, store builder)
    "regime-sample": ("regime", dt.date(2000, 1, 1), dt.date(2022, 12, 31)),
    "health-sample": ("health", dt.date(2005, 1, 1), dt.date(2022, 12, 31)),
    # 10 test years after 12 years of simulated history
    "regime-synthetic": ("regime", dt.date(2012, 1, 1), dt.date(2021, 12, 31)),
    "health-synthetic": ("health", dt.date(2012, 1, 1), dt.date(2021, 12, 31)),
}


def synthetic(folder: str, seed: int, symbols: int) -> LocalStore:
    store = LocalStore(f"{folder}/synthetic-{seed}-{symbols}")
    source = SyntheticSource(SyntheticParams(seed=seed, n_symbols=symbols))
    ingest(source, store, dt.date(2000, 1, 1), dt.date(2021, 12, 31), log=lambda _: None)
    return store


def years_text(summary: dict) -> str:
    """Each test year: the first row's daily Spearman minus -vol_63d's, and its log loss minus
    the base rate's (what the health issue's must-hold lines read year by year)."""
    rows = summary["rows"]
    model = next(iter(rows))
    calibrated = [name for name in rows if name.startswith("calibrated ")]
    lines = [
        f"by year ({model}): spearman - (-vol_63d), log loss - base rate; "
        f"then each of {', '.join(calibrated)}: log loss - base rate"
    ]
    for year, values in rows[model]["by_year"].items():
        reference, base = rows["-vol_63d"]["by_year"][year], rows["base rate"]["by_year"][year]
        others = ", ".join(f"{rows[n]['by_year'][year]['log_loss'] - base['log_loss']:+.4f}" for n in calibrated)
        lines.append(
            f"  {year}: {values['spearman'] - reference['spearman']:+.3f}, "
            f"{values['log_loss'] - base['log_loss']:+.4f}; {others}"
        )
    return "\n".join(lines)


def choices_text(summary: dict) -> str:
    """What each refit chose on its own days (the prior's blend, the correction kept, the shrink)."""
    lines = ["refit choices (first seed): refit date, prior blend, correction weight, calibration shrink"]
    for refit in summary["refits"]:
        facts = refit["seeds"][0]
        lines.append(
            f"  {refit['refit_date']}: {facts.get('prior_blend')}, {facts.get('correction_weight')}, "
            f"{facts.get('calibration_shrink')}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--runs", type=int, default=1, help="timed runs, each from an empty cache")
    parser.add_argument("--model-type")
    parser.add_argument("--seeds", default="0", help="synthetic: simulator seeds, comma-separated")
    parser.add_argument("--symbols", type=int, default=20, help="synthetic: stocks in the universe")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--window-days", type=int, help="a rolling window of this many calendar days")
    args = parser.parse_args()
    model, start, end = JOBS[args.job]
    config = BacktestConfig(
        model=model,
        model_type=args.model_type,
        start=start,
        end=end,
        epochs=args.epochs,
        workers=args.workers,
        window_days=args.window_days,
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.job.endswith("sample"):
            stores = {"sample": lambda run: sample_store(f"{tmp}/run{run}")}
        else:
            stores = {
                f"synthetic seed {s}": (lambda run, s=int(s): synthetic(f"{tmp}/run{run}", s, args.symbols))
                for s in args.seeds.split(",")
            }
        for name, build in stores.items():
            times = []
            for run in range(args.runs):
                store = build(run)
                began = time.perf_counter()
                result = run_backtest(config, store, log=lambda _: None, progress=False)
                times.append(time.perf_counter() - began)
                print(f"\n== {args.job}, {name}, run {run + 1}: {times[-1]:.0f} s")
                print(summary_text(result.summary))
                if model == "health":
                    print(years_text(result.summary))
                    print(choices_text(result.summary))
            print(
                f"\n{args.job} {name}: median {statistics.median(times):.0f} s over {len(times)} run(s) "
                f"(min {min(times):.0f}, max {max(times):.0f})"
            )


if __name__ == "__main__":
    main()
