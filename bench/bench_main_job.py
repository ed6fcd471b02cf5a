"""The README's main job end to end: ingest the bundled sample into a fresh local store, then
train, judge and register both models with the training guide's defaults (365 days, GRU,
autoencoder, up to 100 epochs). The guide budgets 1-2 hours; the target is under 60 s.

    python bench/bench_main_job.py [--runs 3]

Each run is a fresh process in a fresh directory, timed from the outside, as a user would.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    timings = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            steps = [
                ["ingest", "--source", "sample", "--store", f"{tmp}/store"],
                ["train", "--store", f"{tmp}/store", "--output-dir", f"{tmp}/models", "--quiet"],
            ]
            began = time.perf_counter()
            for step in steps:
                result = subprocess.run([sys.executable, "-m", "trader_ml", *step], capture_output=True, text=True)
                if result.returncode != 0:
                    sys.exit(result.stderr)
            timings.append(time.perf_counter() - began)
            print(f"run {run + 1}: {timings[-1]:.1f} s; last lines:\n" + "\n".join(result.stdout.splitlines()[-4:]))
    print(
        f"\nmain job: median {statistics.median(timings):.1f} s over {args.runs} runs "
        f"(min {min(timings):.1f}, max {max(timings):.1f})"
    )


if __name__ == "__main__":
    main()
