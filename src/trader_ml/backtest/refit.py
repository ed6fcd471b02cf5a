"""One refit of a walk-forward backtest: train as ``trader-ml train`` would, export, cache the ONNX.

A refit trains through the same public entry points as the training commands
(``regime_train_config`` + ``train_regime`` + ``regime_artifact``, or their health twins) on
rows dated strictly before its refit date, so ``trader-ml train-regime --until DATE`` gives the
same model by hand. Each result is cached in the store under a key made of the training rows'
fingerprint and the configuration: an interrupted backtest resumes without refitting.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import pandas as pd

from trader_ml import __version__, safejson
from trader_ml.errors import NotFoundError, PreconditionFailed
from trader_ml.store import Store

CACHE_PREFIX = "backtests/cache/"
# Part of every cache key: raised whenever a training recipe changes what a refit of the same rows
# learns (2: the health model reads day-relative volatility and is calibrated by log loss;
# 3: a universe of fewer than 10 names reads its prior's blend half-way to the quarter's volatility;
# 4: the regime labels' window and persistence are chosen on the refit's own training years;
# 6: the regime artifact carries the exposure prior its training days fit;
# 7: a small universe's health calibration is shrunk towards the base rate by its worst own year).
RECIPE_VERSION = 7


@dataclass(frozen=True)
class RefitSpec:
    """What a refit trains, apart from its rows."""

    kind: str  # "regime" or "health"
    model_type: str
    seed: int
    epochs: int
    refit_date: str  # YYYY-MM-DD: the first day the refit's model answers for


@dataclass(frozen=True)
class RefitJob:
    spec: RefitSpec
    rows: pd.DataFrame  # the training rows: every one dated before spec.refit_date
    key: str


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of a frame's values and column names: same rows, same fingerprint."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def make_job(spec: RefitSpec, rows: pd.DataFrame) -> RefitJob:
    config = {**asdict(spec), "package_version": __version__, "recipe": RECIPE_VERSION, "rows": fingerprint(rows)}
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:24]
    return RefitJob(spec, rows, key)


def fit_refit(job: RefitJob) -> tuple[bytes, dict]:
    """(ONNX bytes, metrics) of one refit. Runs in a worker process, a Ray task or in-process;
    the training loop itself keeps to one intra-op thread (FitConfig.threads)."""
    spec = job.spec
    if spec.kind == "regime":
        from trader_ml.training.regime import regime_artifact, regime_summary, regime_train_config, train_regime

        config = regime_train_config(spec.model_type, epochs=spec.epochs, seed=spec.seed, device="cpu")
        result = train_regime(job.rows, config, progress=False)
        data, _ = regime_artifact(result)
        summary = regime_summary(result.metrics)
        choices: dict = {}  # its labeller is the default one; its calibration is in the artifact
    else:
        from trader_ml.training.health import health_artifact, health_summary, health_train_config, train_health

        config = health_train_config(spec.model_type, epochs=spec.epochs, seed=spec.seed, device="cpu")
        result = train_health(job.rows, config, progress=False)
        data, _ = health_artifact(result)
        summary = health_summary(result.metrics)
        prior = result.metrics["prior"]
        choices = {
            "prior_blend": prior["blend"],
            "correction_weight": prior["correction_weight"],
            "calibration_shrink": prior["calibration_shrink"],
        }
    metrics = {
        **asdict(spec),
        "data_window": result.data_window,
        "fit": result.fit.summary(),
        "own_test_window": summary,
        "choices": choices,  # what the refit chose from its own training rows (health: the blend, the correction kept)
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return data, metrics


def cache_keys(job: RefitJob) -> tuple[str, str]:
    """(the model's key stem, the metrics key) of a refit in the cache."""
    base = f"{CACHE_PREFIX}{job.spec.kind}/{job.key}"
    return base, f"{base}.json"


def model_key(base: str, sha256: str) -> str:
    """Models are stored by content: two runs filling the same refit at once each write their
    own file, and the metrics, written last, name the one they describe."""
    return f"{base}-{sha256[:16]}.onnx"


def load_cached(store: Store, job: RefitJob) -> tuple[bytes, dict] | None:
    """A finished refit from the cache, or None; bytes that do not match their recorded
    sha256 (a partial or damaged file) count as not cached."""
    base, metrics_key = cache_keys(job)
    try:
        metrics = safejson.loads_object(store.read(metrics_key), store.describe(metrics_key))
        digest = metrics.get("sha256")
        if not isinstance(digest, str):
            return None
        key = model_key(base, digest)
        data = store.read(key if store.exists(key) else f"{base}.onnx")  # the second: caches from before
    except (NotFoundError, safejson.DamagedJSON):
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        return None
    return data, metrics


def save_cached(store: Store, job: RefitJob, data: bytes, metrics: dict) -> None:
    """The model first, under its content's name; its metrics (with the model's sha256) last: a
    refit counts as done only once both are there, and a concurrent run of the same refit can
    only replace the metrics with its own, naming its own model."""
    base, metrics_key = cache_keys(job)
    key = model_key(base, metrics["sha256"])
    try:
        store.create(key, data)
    except PreconditionFailed:
        if hashlib.sha256(store.read(key)).hexdigest() != metrics["sha256"]:
            store.write(key, data)  # a damaged leftover of an interrupted run
    store.write(metrics_key, json.dumps(metrics, indent=2).encode())
