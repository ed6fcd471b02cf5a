"""Health model benchmark: autoencoder and VAE on 10 synthetic years x 200 symbols and on the
bundled sample (20 stocks, 1990-2022), next to the heuristic and two one-feature scores.

    python bench/bench_health.py [--runs 3] [--skip-sample] [--timing-only]

Then the median time to train the autoencoder on 365 days x 200 symbols.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from stores import sample_store, synthetic_store  # bench/stores.py

from trader_ml.cli.train import print_health_result
from trader_ml.data.partitions import read_table
from trader_ml.data.truth import health_truth
from trader_ml.models.health import HealthModelConfig
from trader_ml.store import LocalStore
from trader_ml.training.health import HealthTrainConfig, health_artifact, train_health


def report(name: str, store: LocalStore, model_type: str, max_days: int | None = None) -> float:
    features = read_table(store, "features", max_days=max_days)
    config = HealthTrainConfig(model=HealthModelConfig(model_type=model_type))
    began = time.perf_counter()
    result = train_health(features, config, truth=health_truth(store, features), progress=False)
    _, metadata = health_artifact(result)
    seconds = time.perf_counter() - began
    print(
        f"\n== {name}, {model_type}: {seconds:.1f} s (train + export), best epoch {result.fit.best_epoch} "
        f"of {len(result.fit.history)}, parity {metadata['parity_max_abs_diff']:.1e}"
    )
    print_health_result(result)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="runs of the 365-day timing")
    parser.add_argument("--skip-sample", action="store_true")
    parser.add_argument("--timing-only", action="store_true", help="only the 365-day timing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = synthetic_store(tmp)
        for model_type in ("autoencoder", "vae") if not args.timing_only else ():
            report("synthetic 2012-2021, 200 symbols", synthetic, model_type)
        if not (args.skip_sample or args.timing_only):
            sample = sample_store(tmp)
            for model_type in ("autoencoder", "vae"):
                report("sample 1990-2022, 20 survivor large caps", sample, model_type)
        times = [report("synthetic, last 365 days x 200", synthetic, "autoencoder", 365) for _ in range(args.runs)]
        print(
            f"\nautoencoder on 365 days x 200 symbols: median {statistics.median(times):.1f} s over "
            f"{args.runs} runs (min {min(times):.1f}, max {max(times):.1f})"
        )


if __name__ == "__main__":
    main()
