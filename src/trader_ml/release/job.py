"""The monthly job: read the store, train both models, judge them, export, publish, maybe promote.

Stages, one method each of ``TrainingRun``: read -> train (regime, health) -> judge -> write
--output-dir -> publish (unless --skip-upload).
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
from trader_ml.data import suspect
from trader_ml.data.partitions import last_day_before, no_data_message, read_table, stored_days
from trader_ml.data.sources.base import years_before
from trader_ml.data.truth import health_truth, regime_truth
from trader_ml.errors import InsufficientHistory, StoreError, TraderMLError
from trader_ml.monitor.record import live_record
from trader_ml.release.judge import Candidate, judge, load_champion, summary_table, test_answers
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


def _quiet(line: str) -> None:
    """The features' note repeats the context's: said once."""


def load_data(store: Store, options: TrainOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    if options.start and options.end and options.start > options.end:
        raise TraderMLError(f"--start {options.start} is after --end {options.end}")
    last = last_day_before(options.end, options.until)
    context = suspect.leave_out(store, read_table(store, "context", options.regime_max_days, options.start, last))
    if context.empty:
        raise TraderMLError(no_data_message(store, "context"))
    features = suspect.leave_out(store, read_table(store, "features", options.max_days, options.start, last), _quiet)
    if features.empty:
        raise TraderMLError(no_data_message(store, "features"))
    return context, features


def champion_live_record(store: Store, pointer: dict | None, options: TrainOptions, log) -> dict | None:
    """The outgoing champion's live record (trader-ml monitor), for the new version's manifest
    and report; None before anything was served; ``{"unavailable": why}`` when it cannot be
    computed. The record is optional: nothing it reads may stop the training, the gate or the
    publish, so any failure here costs the live section alone, which says why."""
    if pointer is None or not store.list(PREDICTIONS_PREFIX):
        return None
    try:
        live = live_record(store, today=options.today)
    except Exception as e:  # noqa: BLE001 - see the docstring: a bug here must not stop the monthly job
        why = str(e) if isinstance(e, TraderMLError) else f"{type(e).__name__}: {e}"
        log(f"  the champion's live record could not be read ({why[:300]}); the manifest and report say so")
        return {"unavailable": why[:300]}
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
        recorded, _ = registry.manifest_field(store, version, "training_fingerprint")
        if recorded == fingerprint:  # a damaged or unreadable fingerprint matches nothing
            return version, what
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
        options.regime_type,
        options.epochs,
        options.regime_batch_size,
        options.seed,
        options.device,
        label_horizon=options.regime_label_horizon,
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


class TrainingRun:
    """One run of the job, a method per stage: read, train, judge, write, publish. What a stage
    learns is kept on the run, so the next stage reads it and Ctrl-C can say what was published."""

    def __init__(self, options: TrainOptions, log: Callable[[str], None]) -> None:
        self.options, self.log, self.stage = options, log, Stages(log)
        self.store = open_store(options.store, region=options.region, endpoint_url=options.endpoint_url)
        self.today = options.today or dt.date.today()
        self.version: str | None = None  # the version being published, once the publish stage starts
        self.promoted = False
        self._report: str | None = None

    def read(self) -> Outcome | None:
        """The tables, the current pointer and the fingerprint; an outcome when this data and these
        settings are a stored version's already (nothing to train)."""
        options = self.options
        self.stage(
            f"reading {_days(options.max_days)} of features and {_days(options.regime_max_days)} of context "
            f"from {self.store.url}"
        )
        self.context, self.features = load_data(self.store, options)
        self.pointer, self.etag = registry.read_latest(self.store)
        self.fingerprint = training_fingerprint(self.context, self.features, options)
        return None if options.force else _unchanged(self.store, self.pointer, self.fingerprint, self.log)

    def train(self) -> None:
        try:
            self.candidate = train_candidate(self.options, self.store, self.context, self.features, self.stage)
        except InsufficientHistory as e:
            raise InsufficientHistory(f"{e}; {history_advice(self.store, self.context)}") from None

    def judge(self) -> None:
        """Each model's gate decision against its references and the champion, as served."""
        self.stage(f"judging against the baselines and the current models: {registry.describe_pointer(self.pointer)}")
        self.answers = test_answers(self.candidate, self.context, self.features)
        champion = load_champion(self.store, self.pointer, self.log)
        self.champions = {"versions": champion.versions, "notes": champion.notes}
        self.decisions = judge(
            self.answers, self.context, champion, self.options.tolerance, self.candidate.health.references
        )
        _log_judgement(self.candidate, self.decisions, self.log)
        passing = (k for k in registry.KINDS if self.decisions[k].promote)
        self.passing = registry.KINDS if self.options.force else tuple(passing)

    def manifest_of(self, version: str) -> dict:
        return describe(
            version,
            self.candidate,
            self.context,
            self.features,
            self.decisions,
            self.champions,
            self.options,
            self.facts,
        )

    def write(self) -> None:
        """The manifest of the planned version and the local copies in --output-dir."""
        self.planned = next(registry.candidate_versions(self.store, self.today))
        self.stage(f"writing version {self.planned} to {self.options.output_dir}")
        self.live = champion_live_record(self.store, self.pointer, self.options, self.log)
        self.facts = run_facts(self.context, self.features, self.candidate, self.fingerprint, self.live)
        self.manifest = self.manifest_of(self.planned)
        self.files = write_outputs(self.options.output_dir, self.planned, self.candidate, self.manifest)

    def report(self) -> str:
        """The training report of the manifest as it stands: rendered once, stored locally and in the store."""
        if self._report is None:
            self._report = report_html(
                self.manifest, self.candidate, self.context, self.answers, self.decisions, self.live
            )
        return self._report

    def keep_local(self) -> Outcome:
        """--skip-upload: the report beside the local copies, nothing in the store."""
        LocalStore(self.files[-1].parent).create(self.files[-1].name, self.report())
        self.log(f"  wrote {', '.join(str(f) for f in self.files)}")
        self.stage("--skip-upload: nothing written to the store")
        self.log(summary_table(self.decisions))
        return Outcome(None, (), self.decisions, self.manifest, self.files)

    def publish(self) -> Outcome:
        """The version stored (renamed if a concurrent run took the name), its report, then latest.json."""
        store, log = self.store, self.log
        self.stage(f"publishing to {store.url}")
        self.version = self.planned
        self.manifest = registry.publish(
            store,
            self.today,
            {"regime": self.candidate.regime_onnx, "health": self.candidate.health_onnx},
            self.manifest_of,
            log=lambda text: log(f"  {text}"),
        )
        self.version = self.manifest["version"]
        if self.version != self.planned:  # a concurrent run took the planned name: the local copies follow
            for path in self.files[:-1]:
                path.unlink(missing_ok=True)
            self.files = write_outputs(self.options.output_dir, self.version, self.candidate, self.manifest)
            log(
                f"  version {self.planned} was taken meanwhile; stored as {self.version}, and the local copies renamed to match"
            )
        LocalStore(self.files[-1].parent).create(self.files[-1].name, self.report())
        log(f"  local copies: {', '.join(str(f) for f in self.files)}")
        store.create(registry.report_key(self.version), self.report())
        log(
            f"  report: {store.describe(registry.report_key(self.version))} (trader-ml report {self.version} --store {store.url})"
        )
        self._promote()
        log(summary_table(self.decisions))
        return Outcome(self.version, self.passing, self.decisions, self.manifest, self.files)

    def _promote(self) -> None:
        """latest.json swapped to the passing models of the stored version, or why it was not."""
        version, pointer, log = self.version, self.pointer, self.log
        if not self.passing:
            log(
                f"  version {version} is stored but not promoted; latest.json still makes current "
                f"{registry.describe_pointer(pointer)} (trader-ml models promote {version} to override)"
            )
            return
        new_pointer = registry.pointer_for(self.manifest, pointer, self.passing)
        try:
            registry.swap_latest(self.store, new_pointer, self.etag)
            self.promoted = True
        except StoreError as e:
            raise StoreError(
                f"version {version} is stored but not current: {e}; latest.json still makes current "
                f"{registry.describe_pointer(pointer)}; make it current with trader-ml models promote {version} "
                f"--store {self.store.url}"
            ) from None
        forced = " (--force)" if self.options.force else ""
        passing = self.passing
        log(f"  promoted the {' and '.join(passing)} model{'s' if len(passing) > 1 else ''} of {version}{forced}")
        log(f"  models/latest.json now makes current: {registry.describe_pointer(new_pointer)}")

    def interrupted(self) -> Interrupted:
        """What Ctrl-C leaves behind, in words."""
        where = self.store.url
        if self.promoted:
            said = f"version {self.version} was published and made current in {where}"
        elif self.version is not None:
            said = (
                f"version {self.version} was being published to {where}; latest.json was not moved "
                f"(trader-ml models list --store {where} shows what was stored)"
            )
        else:
            said = f"nothing was published to {where} and latest.json is unchanged"
        return Interrupted(f"interrupted: {said}")


def run_training(options: TrainOptions, log: Callable[[str], None] = print) -> Outcome:
    """The job; Ctrl-C says what was published (nothing, before the publish stage)."""
    try:
        run = TrainingRun(options, log)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: nothing was published to {options.store} and latest.json is unchanged"
        ) from None
    try:
        unchanged = run.read()
        if unchanged is not None:
            return unchanged
        run.train()
        run.judge()
        run.write()
        return run.keep_local() if options.skip_upload else run.publish()
    except KeyboardInterrupt:
        raise run.interrupted() from None


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
