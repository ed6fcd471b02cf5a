"""The speed figures a user feels, each next to its target, medians of several runs in one run.

    python bench/bench_targets.py [--runs 3] [--wheels-dir .wheelhouse] [--skip-main-job]

- serving (bench_serving.py's protocol): cold start of the ONNX predictor (import, load both
  models, first answer for a 63-day window and 500 symbols) and warm p50, each against the same
  models in torch in the same run; the Lambda bundle's unzipped size;
- ingest of the bundled sample (33 years, SPY + 20 stocks) into a fresh local store;
- default health training on the last 365 days x 200 synthetic symbols (bench_health.py's timing);
- the README's main job from a fresh directory: sample ingest, then ``trader-ml train``.

Prints a Markdown table (figure, median, runs, target, met) for docs/benchmarks.md, and the load
average before and after, since these machines are shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import bench_serving  # bench/bench_serving.py
from bench_health import report as health_timing
from stores import synthetic_store  # bench/stores.py

from trader_ml.data.ingest import ingest
from trader_ml.data.sources.sample import SampleSource
from trader_ml.store import LocalStore


def serving(runs: int, wheels_dir: str | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("cold_s", "cold_torch_s", "p50_ms", "p50_torch_ms", "bundle_mb")}
    with tempfile.TemporaryDirectory() as tmp:
        values = bench_serving.prepare(Path(tmp))
        for _ in range(runs):  # interleaved, so both paths see the same load
            onnx = bench_serving.run(bench_serving.script(bench_serving.ONNX, 300, **values))
            torch = bench_serving.run(bench_serving.script(bench_serving.TORCH, 300, **values))
            out["cold_s"].append(onnx["cold_s"])
            out["cold_torch_s"].append(torch["cold_s"])
            out["p50_ms"].append(onnx["p50_ms"])
            out["p50_torch_ms"].append(torch["p50_ms"])
        from trader_ml.release.bundle import build_bundle

        size = build_bundle(f"{tmp}/lambda.zip", wheels_dir=wheels_dir)
        with zipfile.ZipFile(f"{tmp}/lambda.zip"):
            out["bundle_mb"].append(size / 2**20)  # MiB, as docs/benchmarks.md has always counted it
    return out


def sample_ingest(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            ingest(SampleSource(), LocalStore(f"{tmp}/store"), log=lambda _: None)  # its whole range, as the README's
            times.append(time.perf_counter() - began)
    return times


def health_training(runs: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(tmp)
        return [health_timing("synthetic, last 365 days x 200", store, "autoencoder", 365) for _ in range(runs)]


def main_job(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            for step in (
                ["ingest", "--source", "sample", "--store", f"{tmp}/store"],
                ["train", "--store", f"{tmp}/store", "--output-dir", f"{tmp}/models", "--quiet"],
            ):
                result = subprocess.run([sys.executable, "-m", "trader_ml", *step], capture_output=True, text=True)
                if result.returncode != 0:
                    sys.exit(result.stderr)
            times.append(time.perf_counter() - began)
    return times


def row(name: str, values: list[float], unit: str, target: float, fmt: str = ".3f") -> str:
    median = statistics.median(values)
    runs = ", ".join(f"{v:{fmt}}" for v in values)
    return (
        f"| {name} | {median:{fmt}} {unit} | {runs} | under {target:g} {unit} | {'yes' if median < target else 'no'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wheels-dir", default=None)
    parser.add_argument("--skip-main-job", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    s = serving(args.runs, args.wheels_dir)
    cold, cold_torch = statistics.median(s["cold_s"]), statistics.median(s["cold_torch_s"])
    p50, p50_torch = statistics.median(s["p50_ms"]), statistics.median(s["p50_torch_ms"])
    rows = [
        "| figure | median | runs | target | met |",
        "|---|---|---|---|---|",
        row("cold start, ONNX predictor (500 symbols)", s["cold_s"], "s", 0.08),
        f"| cold start, torch / ONNX in the same run | {cold_torch / cold:.1f}x | torch {statistics.median(s['cold_torch_s']):.3f} s | at least 12x | {'yes' if cold_torch / cold >= 12 else 'no'} |",
        row("warm answer p50, ONNX predictor", s["p50_ms"], "ms", 1.5, ".2f"),
        f"| warm answer p50, torch in the same run | {p50_torch:.2f} ms | {', '.join(f'{v:.2f}' for v in s['p50_torch_ms'])} | ONNX below it | {'yes' if p50 < p50_torch else 'no'} |",
        row("Lambda bundle, unzipped", s["bundle_mb"], "MB", 50, ".1f"),
        row("sample ingest (33 years, SPY + 20 stocks)", sample_ingest(args.runs), "s", 10, ".1f"),
        row("default health training, 365 days x 200 symbols", health_training(args.runs), "s", 8, ".1f"),
    ]
    if not args.skip_main_job:
        rows.append(
            row("the README's main job (sample ingest + trader-ml train)", main_job(args.runs), "s", 120, ".0f")
        )
    print("\n".join(rows))
    print(f"\nload average (1, 5, 15 min): before {load_before}, after {os.getloadavg()}; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
