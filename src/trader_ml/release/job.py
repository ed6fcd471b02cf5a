"""The monthly job: read the store, train both models, judge them, export, publish, maybe promote.

Stages: read -> regime -> health -> gate -> write --output-dir -> publish (unless --skip-upload).
Each candidate model is compared, on its own test window, with its baseline and with the current
champion of its kind (run from the champion's ONNX file); each model that passes its gate is made
current on its own (a health model that passes is not held back by a regime model that fails),
and latest.json moves only by compare-and-swap.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trader_ml import registry
from trader_ml.data.partitions import last_day_before, no_data_message, read_table, stored_days
from trader_ml.data.sources.base import years_before
from trader_ml.data.truth import health_truth, regime_truth
from trader_ml.errors import InsufficientHistory, StoreError, TraderMLError
from trader_ml.monitor.record import live_record
from trader_ml.release.judge import Candidate, judge, load_champion, summary_table, test_windows
from trader_ml.release.manifest import describe, run_facts, training_fingerprint
from trader_ml.release.outputs import write_outputs
from trader_ml.release.report import report_html
from trader_ml.schema import PREDICTIONS_PREFIX
from trader_ml.store import LocalStore, Store, open_store
from trader_ml.training.gate import GateDecision
from trader_ml.training.health import health_artifact, health_train_config, train_health
from trader_ml.training.options import TrainOptions
from trader_ml.training.pooling import training_rows_text
from trader_ml.training.regime import regime_artifact, regime_train_config, train_regime

STAGES = 6


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


def champion_live_record(store: Store, pointer: dict | None, options: TrainOptions, log) -> dict | None:
    """The outgoing champion's live record (trader-ml monitor), for the new version's manifest
    and report; None before anything was served. Monitoring never stops a training run."""
    if pointer is None or not store.list(PREDICTIONS_PREFIX):
        return None
    try:
        live = live_record(store, today=options.today)
    except TraderMLError as e:
        log(f"  the champion's live record could not be computed ({e}); the report shows none")
        return None
    log(f"  champion's live record: health {live['health']['verdict']}; regime {live['regime']['verdict']}")
    return live


def same_as_before(store: Store, pointer: dict | None, fingerprint: str) -> tuple[str, str] | None:
    """(version, which) of the current models or the newest version when they were trained on
    these very rows and settings; None otherwise."""
    current = {registry.model_version(pointer, kind) for kind in registry.KINDS} - {None} if pointer else set()
    stored = registry.versions(store)
    candidates = [(v, "the current models") for v in sorted(current)]
    if stored and stored[-1] not in current:
        candidates.append((stored[-1], "the newest stored version, not promoted"))
    for version, what in candidates:
        try:
            if registry.read_manifest(store, version).get("training_fingerprint") == fingerprint:
                return version, what
        except TraderMLError:
            continue  # an unreadable manifest matches nothing
    return None


def history_advice(store: Store, context: pd.DataFrame) -> str:
    """What to do about too little history: read more of the store when a window limited it, or
    ingest more when the store holds no more."""
    stored = stored_days(store, "context")
    first = dt.date.fromisoformat(stored[0])
    read = f"{len(context)} of its {len(stored)} stored trading days ({stored[0]} .. {stored[-1]})"
    if len(context) < len(stored):
        return f"this run read {read}: widen the window (--regime-max-days, --max-days, --start)"
    return (
        f"the store holds only {len(stored)} trading days ({stored[0]} .. {stored[-1]}): ingest more history, "
        f"e.g. trader-ml ingest --store {store.url} --start {years_before(first, 5)} "
        f"--end {first - dt.timedelta(days=1)} with the same --source"
    )


def train_candidate(
    options: TrainOptions, store: Store, context: pd.DataFrame, features: pd.DataFrame, stage: Stages
) -> Candidate:
    regime_config = regime_train_config(
        options.regime_type, options.epochs, options.regime_batch_size, options.seed, options.device
    )
    stage(f"training the regime model ({options.regime_type}) on {len(context)} days")
    regime = train_regime(context, regime_config, regime_truth(store, context["date"]), options.progress)
    regime_onnx, _ = regime_artifact(regime)
    health_config = health_train_config(
        options.health_type, options.epochs, options.health_batch_size, options.seed, options.device
    )
    stage(f"training the health model ({options.health_type}) on {len(features)} rows")
    health = train_health(features, health_config, health_truth(store, features), options.progress)
    health_onnx, _ = health_artifact(health)
    return Candidate(regime, health, regime_onnx, health_onnx)


class Interrupted(TraderMLError):
    """Ctrl-C during the job, with what it had published by then."""

    exit_code = 130


def run_training(options: TrainOptions, log: Callable[[str], None] = print) -> Outcome:
    """The job; Ctrl-C says what was published (nothing, before the publish stage)."""
    progress: dict[str, str] = {}
    try:
        return _run_training(options, log, progress)
    except KeyboardInterrupt:
        where = progress.get("store", options.store)
        if "promoted" in progress:
            said = f"version {progress['version']} was published and made current in {where}"
        elif "version" in progress:
            said = (
                f"version {progress['version']} was being published to {where}; latest.json was not moved "
                f"(trader-ml models list --store {where} shows what was stored)"
            )
        else:
            said = f"nothing was published to {where} and latest.json is unchanged"
        raise Interrupted(f"interrupted: {said}") from None


def _run_training(options: TrainOptions, log: Callable[[str], None], progress: dict[str, str]) -> Outcome:
    stage = Stages(log)
    store = open_store(options.store, region=options.region, endpoint_url=options.endpoint_url)
    today = options.today or dt.date.today()
    stage(
        f"reading {_days(options.max_days)} of features and {_days(options.regime_max_days)} of context from {store.url}"
    )
    context, features = load_data(store, options)
    pointer, etag = registry.read_latest(store)
    fingerprint = training_fingerprint(context, features, options)
    unchanged = None if options.force else _unchanged(store, pointer, fingerprint, log)
    if unchanged is not None:
        return unchanged
    try:
        candidate = train_candidate(options, store, context, features, stage)
    except InsufficientHistory as e:
        raise InsufficientHistory(f"{e}; {history_advice(store, context)}") from None
    stage(f"judging against the baselines and the current models: {registry.describe_pointer(pointer)}")
    window = test_windows(candidate, context, features)
    champion = load_champion(store, pointer, log)
    champions = {"versions": champion.versions, "notes": champion.notes}
    decisions = judge(window, context, champion, options.tolerance, candidate.health.references)
    _log_judgement(candidate, decisions, log)

    planned = next(registry.candidate_versions(store, today))
    stage(f"writing version {planned} to {options.output_dir}")
    live = champion_live_record(store, pointer, options, log)
    facts = run_facts(context, features, candidate, fingerprint, live)

    def describe_version(version: str) -> dict:
        return describe(version, candidate, context, features, decisions, champions, options, facts)

    manifest = describe_version(planned)
    files = write_outputs(options.output_dir, planned, candidate, manifest)
    passing = registry.KINDS if options.force else tuple(k for k in registry.KINDS if decisions[k].promote)
    if options.skip_upload:
        LocalStore(files[-1].parent).create(
            files[-1].name, report_html(manifest, candidate, context, window, decisions, live)
        )
        log(f"  wrote {', '.join(str(f) for f in files)}")
        stage("--skip-upload: nothing written to the store")
        log(summary_table(decisions))
        return Outcome(None, (), decisions, manifest, files)

    stage(f"publishing to {store.url}")
    progress.update(store=store.url, version=planned)
    stored, files = _publish(
        store, today, planned, candidate, files, options.output_dir, log, progress, describe_version
    )
    version = stored["version"]
    report = report_html(stored, candidate, context, window, decisions, live)  # rendered once, stored twice
    LocalStore(files[-1].parent).create(files[-1].name, report)
    log(f"  local copies: {', '.join(str(f) for f in files)}")
    store.create(registry.report_key(version), report)
    log(f"  report: {store.describe(registry.report_key(version))} (trader-ml report {version} --store {store.url})")
    _promote(store, stored, pointer, etag, passing, options, log, progress)
    log(summary_table(decisions))
    return Outcome(version, passing, decisions, stored, files)


def _unchanged(store, pointer, fingerprint: str, log: Callable[[str], None]) -> Outcome | None:
    """The outcome of a run whose data and settings are a stored version's: nothing trained."""
    same = same_as_before(store, pointer, fingerprint)
    if same is None:
        return None
    version, what = same
    log(
        f"  the training data and settings are those of version {version} ({what}): it would learn the same "
        "models, so nothing was trained or published; ingest new days, change a setting, or pass --force"
    )
    return Outcome(None, (), {}, registry.read_manifest(store, version), [])


def _log_judgement(candidate, decisions: dict, log: Callable[[str], None]) -> None:
    """The test windows, which rows trained the health model, each gate's verdict, the warnings."""
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


def _publish(
    store, today, planned: str, candidate, files: list, output_dir: str, log, progress: dict, describe_version
):
    """(stored manifest, local files): the version published, and the local copies renamed when a
    concurrent run took the planned name."""
    stored = registry.publish(
        store,
        today,
        {"regime": candidate.regime_onnx, "health": candidate.health_onnx},
        describe_version,
        log=lambda text: log(f"  {text}"),
    )
    version = stored["version"]
    progress["version"] = version
    if version != planned:  # a concurrent run took the planned name: the local copies follow the store
        for path in files[:-1]:
            path.unlink(missing_ok=True)
        files = write_outputs(output_dir, version, candidate, stored)
        log(f"  version {planned} was taken meanwhile; stored as {version}, and the local copies renamed to match")
    return stored, files


def _promote(store, stored: dict, pointer, etag, passing: tuple, options: TrainOptions, log, progress: dict) -> None:
    """latest.json swapped to the passing models of the stored version, or why it was not."""
    version = stored["version"]
    if not passing:
        log(
            f"  version {version} is stored but not promoted; latest.json still makes current "
            f"{registry.describe_pointer(pointer)} (trader-ml models promote {version} to override)"
        )
        return
    new_pointer = registry.pointer_for(stored, pointer, passing)
    try:
        registry.swap_latest(store, new_pointer, etag)
        progress.update(version=version, promoted="yes")
    except StoreError as e:
        raise StoreError(
            f"version {version} is stored but not current: {e}; latest.json still makes current "
            f"{registry.describe_pointer(pointer)}; make it current with trader-ml models promote {version} --store {store.url}"
        ) from None
    forced = " (--force)" if options.force else ""
    log(f"  promoted the {' and '.join(passing)} model{'s' if len(passing) > 1 else ''} of {version}{forced}")
    log(f"  models/latest.json now makes current: {registry.describe_pointer(new_pointer)}")
