"""Regime model benchmark: GRU and Transformer on 10 synthetic years and on the bundled sample.

    python bench/bench_regime.py [--runs 3] [--skip-sample]

Prints every test-window metric for model and rule baseline (and against the simulator's
true regimes on synthetic data), then the median time to train the GRU on 365 days.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from stores import sample_store, synthetic_store  # bench/stores.py

from trader_ml.data.partitions import read_table
from trader_ml.data.truth import regime_truth
from trader_ml.store import LocalStore
from trader_ml.training.metrics import regime_table
from trader_ml.training.regime import RegimeTrainConfig, regime_artifact, regime_train_config, train_regime


def config(model_type: str) -> RegimeTrainConfig:
    return regime_train_config(model_type)


def report(name: str, store: LocalStore, model_type: str, max_days: int | None = None) -> float:
    context = read_table(store, "context", max_days=max_days)
    truth = regime_truth(store, context["date"])
    began = time.perf_counter()
    result = train_regime(context, config(model_type), truth=truth, progress=False)
    _, metadata = regime_artifact(result)
    seconds = time.perf_counter() - began
    window = result.metrics["test_window"]
    print(
        f"\n== {name}, {model_type}: {seconds:.1f} s (train + export), best epoch {result.fit.best_epoch} "
        f"of {len(result.fit.history)}, parity {metadata['parity_max_abs_diff']:.1e}"
    )
    print(
        f"test window {window['first_date']} .. {window['last_date']}, {window['days']} days, "
        f"by label {window['days_per_regime']}"
    )
    columns = ("model", "baseline", "model_vs_truth", "baseline_vs_truth")
    print(regime_table({k: result.metrics[k] for k in columns if k in result.metrics}))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="runs of the 365-day timing")
    parser.add_argument("--skip-sample", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = synthetic_store(tmp)
        for model_type in ("gru", "transformer"):
            report("synthetic 2012-2021", synthetic, model_type)
        if not args.skip_sample:
            sample = sample_store(tmp)
            for model_type in ("gru", "transformer"):
                report("sample 1990-2022 (S&P 500 index only)", sample, model_type)
        times = [report("synthetic, last 365 days", synthetic, "gru", max_days=365) for _ in range(args.runs)]
        print(
            f"\nGRU on 365 days: median {statistics.median(times):.1f} s over {args.runs} runs "
            f"(min {min(times):.1f}, max {max(times):.1f})"
        )


if __name__ == "__main__":
    main()
