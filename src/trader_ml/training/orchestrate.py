"""The monthly job: read the store, train both models, judge them, export, publish, maybe promote.

Stages: read -> regime -> health -> gate -> write --output-dir -> publish (unless --skip-upload).
Each candidate model is compared, on its own test window, with its baseline and with the current
champion of its kind (run from the champion's ONNX file); each model that passes its gate is made
current on its own (a health model that passes is not held back by a regime model that fails),
and latest.json moves only by compare-and-swap.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trader_ml import __version__, registry
from trader_ml.baselines import baseline_health, baseline_regimes
from trader_ml.errors import StoreError, TraderMLError
from trader_ml.gate import (
    DEFAULT_TOLERANCE,
    MIN_TEST_DAYS,
    GateDecision,
    decide,
    health_comparison,
    regime_comparison,
)
from trader_ml.labels import health_targets
from trader_ml.partitions import last_day_before, read_table
from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES
from trader_ml.serving.artifacts import ArtifactError, HealthModel, RegimeModel
from trader_ml.serving.predictor import current_model
from trader_ml.store import LocalStore, Store, open_store
from trader_ml.training.commands import health_truth, no_data_message, regime_truth
from trader_ml.training.health import (
    HealthTrainResult,
    health_artifact,
    health_summary,
    health_train_config,
    train_health,
)
from trader_ml.training.metrics import format_table
from trader_ml.training.pooling import training_rows_text
from trader_ml.training.regime import (
    RegimeTrainResult,
    regime_artifact,
    regime_summary,
    regime_train_config,
    train_regime,
)
from trader_ml.training.regime import windows as regime_windows

STAGES = 6


@dataclass(frozen=True)
class TrainOptions:
    store: str = "./store"
    region: str | None = None
    endpoint_url: str | None = None
    # Days of history, counted back from the newest stored day; None reads everything stored.
    # Both models read all of it by default, as every backtest refit does, so that each test
    # window spans more than a few weeks (docs/registry.md): the guide's 365 left the regime
    # model a 27-day test window and the health model a single year of one volatility regime.
    max_days: int | None = None  # the features table (the health model): the guide's --max-days
    regime_max_days: int | None = None  # the context table (the regime model)
    start: dt.date | None = None  # read only days from start to end, and strictly before until
    end: dt.date | None = None
    until: dt.date | None = None
    regime_type: str = "gru"
    health_type: str = "autoencoder"
    epochs: int = 100
    regime_batch_size: int = 32
    health_batch_size: int = 64
    skip_upload: bool = False
    output_dir: str = "/tmp/models"
    force: bool = False
    tolerance: float = DEFAULT_TOLERANCE
    device: str = "auto"
    seed: int = 0
    progress: bool = True
    today: dt.date | None = None


@dataclass
class Candidate:
    """What the job learned, before it is stored."""

    regime: RegimeTrainResult
    health: HealthTrainResult
    regime_onnx: bytes
    health_onnx: bytes
    regime_meta: dict
    health_meta: dict


@dataclass
class Outcome:
    version: str | None  # None with --skip-upload
    promoted: tuple[str, ...]  # the models this run made current
    decisions: dict[str, GateDecision]
    manifest: dict
    output_files: list[Path]


class Stages:
    """Prints ``[n/6] what`` with the time each stage took."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log, self.n, self.began = log, 0, time.perf_counter()

    def __call__(self, text: str) -> None:
        self.n += 1
        self.log(f"[{self.n}/{STAGES}] {text} ({time.perf_counter() - self.began:.0f} s)")


def _days(max_days: int | None) -> str:
    return f"the last {max_days} days" if max_days else "every stored day"


def load_data(store: Store, options: TrainOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    if options.start and options.end and options.start > options.end:
        raise TraderMLError(f"--start {options.start} is after --end {options.end}")
    last = last_day_before(options.end, options.until)
    context = read_table(store, "context", options.regime_max_days, options.start, last)
    if context.empty:
        raise TraderMLError(no_data_message(store, "context"))
    features = read_table(store, "features", options.max_days, options.start, last)
    if features.empty:
        raise TraderMLError(no_data_message(store, "features"))
    return context, features


def train_candidate(
    options: TrainOptions, store: Store, context: pd.DataFrame, features: pd.DataFrame, stage: Stages
) -> Candidate:
    regime_config = regime_train_config(
        options.regime_type, options.epochs, options.regime_batch_size, options.seed, options.device
    )
    stage(f"training the regime model ({options.regime_type}) on {len(context)} days")
    regime = train_regime(context, regime_config, regime_truth(store, context["date"]), options.progress)
    regime_onnx, regime_meta = regime_artifact(regime)
    health_config = health_train_config(
        options.health_type, options.epochs, options.health_batch_size, options.seed, options.device
    )
    stage(f"training the health model ({options.health_type}) on {len(features)} rows")
    health = train_health(features, health_config, health_truth(store, features), options.progress)
    health_onnx, health_meta = health_artifact(health)
    return Candidate(regime, health, regime_onnx, health_onnx, regime_meta, health_meta)


def load_champion(store: Store, pointer: dict | None, log: Callable[[str], None]):
    """(regime model, health model) latest.json makes current; None for a model it leaves to the
    baseline or that cannot be loaded (the candidate is then judged against the baseline only)."""
    models = []
    for kind in registry.KINDS:
        try:
            models.append(current_model(store, pointer, kind) if pointer else None)
        except (TraderMLError, KeyError) as e:
            log(
                f"  champion {kind} model {pointer.get(f'{kind}_model')} cannot be evaluated ({e}); "
                "judging against the baseline only"
            )
            models.append(None)
    return tuple(models)


def champion_versions(pointer: dict | None) -> dict[str, str | None]:
    return {kind: registry.model_version(pointer, kind) if pointer else None for kind in registry.KINDS}


@dataclass
class TestWindows:
    """The candidate's test windows, what happened in them, and what its ONNX files answer:
    computed once, read by both the gate and the report."""

    regime_rows: np.ndarray  # context rows
    regime_labels: np.ndarray
    regime_probs: np.ndarray  # the exported regime model's probabilities
    health_rows: np.ndarray  # feature rows
    health_x: np.ndarray
    health_target: np.ndarray
    health_drawdown: np.ndarray
    health_score: np.ndarray  # the exported health model's probabilities
    day_index: np.ndarray  # test day of each health row, from 0


def test_windows(candidate: Candidate, context: pd.DataFrame, features: pd.DataFrame) -> TestWindows:
    regime, health = candidate.regime, candidate.health
    rows, index = regime.split.test, health.test_index
    values = context[list(CONTEXT_FEATURES)].to_numpy(dtype=np.float64)
    own = RegimeModel.from_bytes(candidate.regime_onnx)
    x = features[list(ASSET_FEATURES)].to_numpy(dtype=np.float64)[index]
    target, drawdown = health_targets(features, health.config.horizon)
    return TestWindows(
        regime_rows=rows,
        regime_labels=regime.labels[rows],
        regime_probs=own.predict_proba(regime_windows(values, rows, own.lookback))[0],
        health_rows=index,
        health_x=x,
        health_target=target[index],
        health_drawdown=drawdown[index],
        health_score=HealthModel.from_bytes(candidate.health_onnx).predict_proba(x)[0],
        day_index=pd.factorize(pd.DatetimeIndex(features["date"].iloc[index]), sort=True)[0],
    )


def judge(window: TestWindows, context: pd.DataFrame, champion, tolerance: float) -> dict[str, GateDecision]:
    """Candidate vs baseline vs champion, each model on the candidate's own test window."""
    values = context[list(CONTEXT_FEATURES)].to_numpy(dtype=np.float64)
    rows, labels = window.regime_rows, window.regime_labels
    regime_pred = window.regime_probs.argmax(axis=1)
    baseline_pred = baseline_regimes(values)[0][rows]
    champion_regime, champion_health = champion
    decisions = {}
    vs_champion = None
    if champion_regime is not None:
        try:
            champion_probs = champion_regime.predict_proba(regime_windows(values, rows, champion_regime.lookback))[0]
            vs_champion = regime_comparison(labels, regime_pred, champion_probs.argmax(axis=1))
        except (ArtifactError, IndexError) as e:
            raise TraderMLError(f"the champion regime model cannot read this data: {e}") from None
    decisions["regime"] = decide(
        regime_comparison(labels, regime_pred, baseline_pred), vs_champion, len(rows), tolerance
    )

    days, drawdown, score = window.day_index, window.health_drawdown, window.health_score
    vs_champion = None
    if champion_health is not None:
        vs_champion = health_comparison(days, drawdown, score, champion_health.predict_proba(window.health_x)[0])
    vs_baseline = health_comparison(days, drawdown, score, baseline_health(window.health_x))
    decisions["health"] = decide(vs_baseline, vs_champion, int(days.max()) + 1, tolerance)
    return decisions


def describe(
    version: str,
    candidate: Candidate,
    context: pd.DataFrame,
    features: pd.DataFrame,
    decisions: dict[str, GateDecision],
    champions: dict[str, str | None],
    options: TrainOptions,
) -> dict:
    """The manifest of a version; its first six keys are latest.json's seed keys. It records what
    the gate decided for each model and whether the run was forced; what is current is for
    latest.json alone to say."""
    regime_m, health_m = candidate.regime.metrics, candidate.health.metrics
    regime_summary_ = regime_summary(regime_m)
    health_summary_ = health_summary(health_m)
    return {
        "version": version,
        "timestamp": dt.datetime.now().isoformat(timespec="seconds"),
        "regime_model": registry.artifact_key("regime", version),
        "health_model": registry.artifact_key("health", version),
        "regime_metrics": {
            "test_accuracy": regime_summary_["test_accuracy"],
            "test_f1_macro": regime_summary_["test_f1_macro"],
            "model_type": options.regime_type,
            **{k: v for k, v in regime_summary_.items() if k not in ("test_accuracy", "test_f1_macro")},
        },
        "health_metrics": {
            "test_recon_mse": health_summary_["test_recon_mse"],
            "test_health_correlation": health_summary_["test_health_correlation"],
            "model_type": options.health_type,
            **{k: v for k, v in health_summary_.items() if k not in ("test_recon_mse", "test_health_correlation")},
        },
        "regime_sha256": registry.sha256(candidate.regime_onnx),
        "health_sha256": registry.sha256(candidate.health_onnx),
        "data_window": {
            "first_date": str(min(context["date"].min(), features["date"].min()).date()),
            "last_date": str(max(context["date"].max(), features["date"].max()).date()),
            "rows": int(len(context)),
            "feature_rows": int(len(features)),
            "symbols": int(features["symbol"].nunique()),
            "max_days": options.max_days,
            "regime_max_days": options.regime_max_days,
        },
        "package_version": __version__,
        "baseline_metrics": {
            "regime": {
                "test_accuracy": regime_m["baseline"]["accuracy"],
                "test_f1_macro": regime_m["baseline"]["f1_macro"],
            },
            "health": {k: health_m["baseline"][k] for k in ("test_health_correlation", "auc", "brier")},
        },
        "test_windows": {"regime": regime_m["test_window"], "health": health_m["test_window"]},
        "health_training_rows": health_m["training_rows"],
        "warnings": {"regime": regime_m["warnings"], "health": health_m["warnings"]},
        "gate": {
            "gate_passed": {kind: d.promote for kind, d in decisions.items()},
            "forced": options.force,
            "tolerance": options.tolerance,
            "min_test_days": MIN_TEST_DAYS,
            "champion_versions": champions,
            **{kind: d.to_dict() for kind, d in decisions.items()},
        },
    }


OUTPUT_FILES = ("regime_v{}.onnx", "health_v{}.onnx", "manifest_v{}.json", "report_v{}.html")


def output_names(folder: LocalStore, version: str) -> list[str]:
    """The local file names of a version: ``*_vVERSION.*``, or ``*_vVERSION.2.*``, ``.3`` ... when
    an earlier run (another store's, or a --skip-upload run) already wrote that version there:
    a local artifact is never overwritten."""
    run = 1
    while True:
        stem = version if run == 1 else f"{version}.{run}"
        names = [pattern.format(stem) for pattern in OUTPUT_FILES]
        if not any(folder.exists(name) for name in names):
            return names
        run += 1


def write_outputs(output_dir: str, version: str, candidate: Candidate, manifest: dict) -> list[Path]:
    """The artifacts and the manifest in the local output directory, under names no earlier run
    used; returns their paths and the report's (written later)."""
    folder = LocalStore(output_dir)
    names = output_names(folder, version)
    contents = (candidate.regime_onnx, candidate.health_onnx, json.dumps(manifest, indent=2).encode())
    for name, data in zip(names, contents, strict=False):
        folder.create(name, data)
    return [folder.root / name for name in names]


def report_html(
    manifest: dict, candidate: Candidate, context: pd.DataFrame, window: TestWindows, decisions: dict[str, GateDecision]
) -> bytes:
    from trader_ml.report import HealthView, RegimeView, render

    regime, health = candidate.regime, candidate.health
    rows = window.regime_rows
    regime_view = RegimeView(
        dates=pd.DatetimeIndex(context["date"].iloc[rows]),
        spy_return_1d=context["spy_return_1d"].to_numpy()[rows],
        labels=window.regime_labels,
        probs=window.regime_probs,
        history=regime.fit.history,
    )
    health_view = HealthView(
        probability=window.health_score,
        target=window.health_target,
        drawdown=window.health_drawdown,
        history=health.fit.history,
    )
    page = render(
        manifest,
        regime.metrics,
        health.metrics,
        {k: d.to_dict() for k, d in decisions.items()},
        regime_view,
        health_view,
    )
    return page.encode()


def report_key(version: str) -> str:
    return f"reports/v{version}/index.html"


def summary_table(decisions: dict[str, GateDecision]) -> str:
    rows = {}
    for kind, d in decisions.items():
        champion = d.vs_champion.other if d.vs_champion else None
        rows[f"{kind} {d.vs_baseline.metric}"] = [d.vs_baseline.candidate, d.vs_baseline.other, champion]
    return format_table("", ["candidate", "baseline", "champion"], rows).lstrip("\n")


def describe_pointer(pointer: dict | None) -> str:
    """What a latest.json makes current, model by model."""
    if pointer is None:
        return "nothing (the rule baselines serve)"
    return ", ".join(f"{kind} {registry.model_version(pointer, kind) or 'baseline'}" for kind in registry.KINDS)


def run_training(options: TrainOptions, log: Callable[[str], None] = print) -> Outcome:
    stage = Stages(log)
    store = open_store(options.store, region=options.region, endpoint_url=options.endpoint_url)
    today = options.today or dt.date.today()
    stage(
        f"reading {_days(options.max_days)} of features and {_days(options.regime_max_days)} of context from {store.url}"
    )
    context, features = load_data(store, options)
    pointer, etag = registry.read_latest(store)
    candidate = train_candidate(options, store, context, features, stage)
    champions = champion_versions(pointer)
    stage(f"judging against the baselines and the champions ({describe_pointer(pointer)})")
    window = test_windows(candidate, context, features)
    decisions = judge(window, context, load_champion(store, pointer, log), options.tolerance)
    regime_window = candidate.regime.metrics["test_window"]
    log(
        f"  test window {regime_window['first_date']} .. {regime_window['last_date']}: {regime_window['days']} days; "
        f"days per regime (labels): {regime_window['days_per_regime']}"
    )
    log(
        f"  health test window: {candidate.health.metrics['test_window']['days']} days, "
        f"{candidate.health.metrics['test_window']['rows']} rows"
    )
    log(f"  health model {training_rows_text(candidate.health.metrics['training_rows'])}")
    for kind, d in decisions.items():
        log(f"  {kind}: {'passes' if d.promote else 'fails'}: {d.reason}")
    for warning in candidate.regime.metrics["warnings"] + candidate.health.metrics["warnings"]:
        log(f"  warning: {warning}")

    planned = next(registry.candidate_versions(store, today))
    stage(f"writing version {planned} to {options.output_dir}")
    manifest = describe(planned, candidate, context, features, decisions, champions, options)
    files = write_outputs(options.output_dir, planned, candidate, manifest)
    passing = registry.KINDS if options.force else tuple(k for k in registry.KINDS if decisions[k].promote)
    local = LocalStore(options.output_dir)
    if options.skip_upload:
        local.create(files[-1].name, report_html(manifest, candidate, context, window, decisions))
        log(f"  wrote {', '.join(str(f) for f in files)}")
        stage("--skip-upload: nothing written to the store")
        log(summary_table(decisions))
        return Outcome(None, (), decisions, manifest, files)

    stage(f"publishing to {store.url}")
    stored = registry.publish(
        store,
        today,
        {"regime": candidate.regime_onnx, "health": candidate.health_onnx},
        lambda version: describe(version, candidate, context, features, decisions, champions, options),
        log=lambda text: log(f"  {text}"),
    )
    version = stored["version"]
    report = report_html(stored, candidate, context, window, decisions)  # rendered once, stored twice
    local.create(files[-1].name, report)
    log(f"  local copies: {', '.join(str(f) for f in files)}")
    store.create(report_key(version), report)
    log(f"  report: {store.describe(report_key(version))} (trader-ml report {version} --store {store.url})")
    if passing:
        new_pointer = registry.pointer_for(stored, pointer, passing)
        try:
            registry.swap_latest(store, new_pointer, etag)
        except StoreError as e:
            raise StoreError(
                f"version {version} is stored but not current: {e}; latest.json still makes current "
                f"{describe_pointer(pointer)}; make it current with trader-ml models promote {version} --store {store.url}"
            ) from None
        forced = " (--force)" if options.force else ""
        log(f"  promoted the {' and '.join(passing)} model{'s' if len(passing) > 1 else ''} of {version}{forced}")
        log(f"  models/latest.json now makes current: {describe_pointer(new_pointer)}")
    else:
        log(
            f"  version {version} is stored but not promoted; latest.json still makes current "
            f"{describe_pointer(pointer)} (trader-ml models promote {version} to override)"
        )
    log(summary_table(decisions))
    return Outcome(version, passing, decisions, stored, files)
