"""Serving benchmark: the ONNX predictor against the same models loaded with torch.

    python bench/bench_serving.py [--runs 5] [--wheels-dir .wheelhouse]

Trains small models on synthetic data (500 symbols), registers them in a temporary store and
saves their PyTorch weights beside it. Then, in fresh processes, measures cold start (import,
load both models, first prediction of a 63-day window and 500 symbols), warm latency p50/p99
of that prediction, and peak memory, for each path; and the Lambda bundle's unzipped size.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from trader_ml import registry
from trader_ml.data.ingest import ingest
from trader_ml.data.partitions import read_table
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.store import LocalStore
from trader_ml.training.health import HealthTrainConfig, health_artifact, train_health
from trader_ml.training.loop import FitConfig
from trader_ml.training.regime import RegimeTrainConfig, regime_artifact, train_regime

COMMON = """
import json, sys, time
began = time.perf_counter()

def peak_mb():
    # VmHWM is this process's own high-water mark (ru_maxrss survives exec from the parent).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

{imports}
imported = time.perf_counter()
{load}
loaded = time.perf_counter()
inputs = json.load(open({inputs!r}))
{predict}
first = time.perf_counter()
laps = []
for _ in range({repeats}):
    t = time.perf_counter()
    {predict_again}
    laps.append(time.perf_counter() - t)
laps.sort()
print(json.dumps({{"import_s": imported - began, "load_s": loaded - imported, "first_s": first - loaded,
                  "cold_s": first - began, "p50_ms": 1000 * laps[len(laps) // 2],
                  "p99_ms": 1000 * laps[int(len(laps) * 0.99) - 1],
                  "peak_mb": peak_mb()}}))
"""

ONNX = {
    "imports": "from trader_ml.serving.predictor import Predictor",
    "load": "p = Predictor.from_store({store!r})",
    "predict": "p.predict_regime(inputs['context']); p.predict_health(inputs['features'])",
}
TORCH = {
    "imports": "import numpy as np, torch\n"
    "from trader_ml.models.regime import RegimeModelConfig, build_regime_model\n"
    "from trader_ml.models.health import HealthModelConfig, HealthNet\n"
    "from trader_ml.health_inputs import model_inputs, raw_matrix\n"
    "from trader_ml.schema import CONTEXT_FEATURES",
    "load": "cfg = json.load(open({configs!r}))\n"
    "regime = build_regime_model(RegimeModelConfig(**cfg['regime'])); "
    "regime.load_state_dict(torch.load({regime_pt!r}, weights_only=True)); regime.eval()\n"
    "health = HealthNet(HealthModelConfig(**cfg['health'])); "
    "health.load_state_dict(torch.load({health_pt!r}, weights_only=True)); health.eval()",
    "predict": "with torch.no_grad():\n"
    "        w = torch.tensor([[[np.nan if r[c] is None else r[c] for c in CONTEXT_FEATURES] for r in inputs['context'][-63:]]], dtype=torch.float32)\n"
    "        rows = inputs['features']\n"
    "        raw = raw_matrix({{c: [np.nan if r.get(c) is None else r[c] for r in rows] for c in rows[0]}}, len(rows))\n"
    "        x = torch.tensor(model_inputs(raw), dtype=torch.float32)\n"
    "        regime(w); health(x)",
}


def script(path: dict, repeats: int, **values) -> str:
    fields = {k: v.format(**values) for k, v in path.items()}
    again = fields["predict"].replace("\n", "\n    ")
    return COMMON.format(repeats=repeats, inputs=values["inputs"], predict_again=again, **fields)


def run(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def prepare(tmp: Path) -> dict:
    store = LocalStore(tmp / "store")
    ingest(
        SyntheticSource(SyntheticParams(seed=0, n_symbols=500)),
        store,
        dt.date(2018, 1, 1),
        dt.date(2019, 12, 31),
        log=lambda _: None,
    )
    context, features = read_table(store, "context"), read_table(store, "features")
    fit = FitConfig(epochs=2)
    regime = train_regime(context, RegimeTrainConfig(fit=fit), progress=False)
    health = train_health(features, HealthTrainConfig(fit=dataclasses.replace(fit, batch_size=512)), progress=False)
    artifacts = {"regime": regime_artifact(regime)[0], "health": health_artifact(health)[0]}

    def manifest(version: str) -> dict:
        return {
            "version": version,
            "timestamp": "",
            "regime_model": registry.artifact_key("regime", version),
            "health_model": registry.artifact_key("health", version),
            "regime_metrics": {},
            "health_metrics": {},
            "regime_sha256": registry.sha256(artifacts["regime"]),
            "health_sha256": registry.sha256(artifacts["health"]),
            "data_window": {},
            "package_version": "",
            "baseline_metrics": {},
        }

    version = registry.publish(store, dt.date.today(), artifacts, manifest, log=lambda _: None)["version"]
    registry.promote(store, version)
    torch.save(regime.model.state_dict(), tmp / "regime.pt")
    torch.save(health.model.state_dict(), tmp / "health.pt")
    (tmp / "configs.json").write_text(
        json.dumps(
            {"regime": dataclasses.asdict(regime.config.model), "health": dataclasses.asdict(health.config.model)}
        )
    )
    from trader_ml.serving.daily import load_day

    day = load_day(store)
    (tmp / "inputs.json").write_text(json.dumps({"context": day.context_rows, "features": day.feature_rows}))
    print(
        f"models trained and registered; a prediction is 1 window of {len(day.context_rows)} days "
        f"(the model reads the last 63) and {len(day.feature_rows)} symbols"
    )
    return {
        "store": str(store.root),
        "inputs": str(tmp / "inputs.json"),
        "configs": str(tmp / "configs.json"),
        "regime_pt": str(tmp / "regime.pt"),
        "health_pt": str(tmp / "health.pt"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="cold starts per path")
    parser.add_argument("--repeats", type=int, default=300, help="warm predictions per run")
    parser.add_argument("--wheels-dir", default=None, help="build the Lambda bundle from these wheels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        values = prepare(Path(tmp))
        results = {}
        for name, path in (("onnx predictor", ONNX), ("torch", TORCH)):
            runs = [run(script(path, args.repeats, **values)) for _ in range(args.runs)]
            results[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"\nmedians over {args.runs} fresh processes:")
        print(f"{'':16}" + "".join(f"{k:>11}" for k in results["torch"]))
        for name, r in results.items():
            print(f"{name:16}" + "".join(f"{v:11.3f}" for v in r.values()))
        print(f"cold start: torch / onnx = {results['torch']['cold_s'] / results['onnx predictor']['cold_s']:.1f}x")
        from trader_ml.release.bundle import build_bundle

        size = build_bundle(f"{tmp}/lambda.zip", wheels_dir=args.wheels_dir)
        with zipfile.ZipFile(f"{tmp}/lambda.zip") as z:
            zipped = Path(f"{tmp}/lambda.zip").stat().st_size
            print(
                f"lambda bundle: {size / 2**20:.1f} MB unzipped, {zipped / 2**20:.1f} MB zipped, {len(z.namelist())} files"
            )


if __name__ == "__main__":
    main()
