"""The predictor: current models from a store, re-checked after a TTL, baselines when it must.

It reads ``models/latest.json`` when created, verifies each artifact's sha256 and loads it with
onnxruntime; a model that latest.json leaves to the rule baseline (``null``) is answered by it. Every ``ttl_seconds`` it looks at latest.json again: a new version goes live with
no redeploy, and a new pointer that cannot be loaded leaves the last good models serving. When
no trained model can answer, the rule baselines do, with the same dicts. Every answer says
which model produced it (``model_source``, ``model_version``) and why a fallback happened
(``fallback_reason``). numpy, onnxruntime and the standard library only (boto3 for S3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from trader_ml import __version__, registry
from trader_ml.baselines import (
    DEFAULT_HEALTH_RULES,
    baseline_health,
    baseline_health_latent,
    baseline_regime_embedding,
    baseline_regimes,
    min_baseline_days,
)
from trader_ml.errors import TraderMLError
from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES, REQUIRED_CONTEXT_INDEX, regime_output
from trader_ml.serving.artifacts import ArtifactError, HealthModel, RegimeModel, as_matrix, asset_rows, health_dicts
from trader_ml.store import SERVING_TIMEOUTS, Store, open_store

log = logging.getLogger("trader_ml.serving")
DEFAULT_TTL_SECONDS = 600.0
# Loading the models may take this long before the baselines answer instead (a stalled S3): the
# rest of the invocation still has time to read the day and write the answer.
LOAD_SECONDS = 30.0
BASELINE_VERSION = f"baseline-{__version__}"


class InputError(TraderMLError):
    """The rows given cannot be answered, not even by the baselines."""


@dataclass
class Loaded:
    """The models serving from one latest.json, each loaded on its own: None where the pointer
    names the baseline or where its artifact cannot be served (``problems`` says why)."""

    version: str
    etag: str
    regime: RegimeModel | None
    health: HealthModel | None
    versions: dict[str, str | None]  # the version each model came from
    keys: dict[str, tuple[str | None, str | None]]  # (artifact key, sha256) each model was loaded from
    problems: dict[str, str]  # kind -> why its trained model is not serving
    ranges: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # training range per input


def _baseline_by_choice(kind: str) -> str:
    return f"latest.json names the rule baseline for the {kind} model: no trained {kind} model has passed its gate"


class Predictor:
    def __init__(
        self, store: Store | None, ttl_seconds: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.loaded: Loaded | None = None
        self.problem: str | None = None  # why the trained models are not serving, if they are not
        self.checked_at = -float("inf")  # construction reads nothing: the first question loads
        self.last_input_flags: list[str] = []  # inputs of the last answer outside the training range

    @classmethod
    def from_store(
        cls,
        url: str,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        region: str | None = None,
        endpoint_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Predictor:
        try:
            store = open_store(url, region=region, endpoint_url=endpoint_url, timeouts=SERVING_TIMEOUTS)
        except TraderMLError as e:
            log.warning("serving baselines: %s", e)
            predictor = cls(None, ttl_seconds, clock)
            predictor.problem = str(e)
            return predictor
        return cls(store, ttl_seconds, clock)

    # --- models ---------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Look at latest.json again if the TTL has passed; load a new version if it moved."""
        now = self.clock()
        if not force and now - self.checked_at < self.ttl_seconds:
            return
        self.checked_at = now
        if self.store is None:
            return
        try:
            with self.store.deadline(LOAD_SECONDS):
                self._refresh()
        except (TraderMLError, KeyError, ValueError, TypeError, AttributeError, OSError, RecursionError) as e:
            # Whatever a store holds, serving goes on: the last good models, else the baselines.
            self._keep_or_fall_back(f"{type(e).__name__}: {e}")

    def _refresh(self) -> None:
        pointer, etag = registry.read_latest(self.store)
        if pointer is None:
            self._keep_or_fall_back(f"no trained model: {self.store.describe('models/latest.json')} does not exist")
            return
        if self.loaded is not None and self.loaded.etag == etag:
            return
        self.loaded = self._load(pointer, etag)
        self.problem = None
        log.info("serving version %s", pointer["version"])

    def _load(self, pointer: dict, etag: str) -> Loaded:
        """Each model of ``pointer`` loaded on its own: one bad artifact leaves the other model
        serving, and a model that cannot be loaded keeps its last good version, if any."""
        loaded = Loaded(pointer["version"], etag, None, None, {}, {}, {})
        profiles: dict[str | None, dict] = {}  # version -> its manifest's input_profile, read once
        for kind in registry.KINDS:
            key = (pointer[f"{kind}_model"], pointer.get(f"{kind}_sha256"))
            model, version = None, registry.model_version(pointer, kind)
            kept = self.loaded if self.loaded is not None and getattr(self.loaded, kind) is not None else None
            if kept is not None and kept.keys[kind] == key:
                model = getattr(kept, kind)
            else:
                try:
                    model = current_model(self.store, pointer, kind)
                except TraderMLError as e:
                    if kept is not None:
                        log.warning("keeping %s model %s: %s", kind, kept.versions[kind], e)
                        model, version, key = getattr(kept, kind), kept.versions[kind], kept.keys[kind]
                    else:
                        log.warning("%s model falls back to the baseline: %s", kind, e)
                        loaded.problems[kind] = f"the trained {kind} model cannot be served: {e}"
                        version = None
            setattr(loaded, kind, model)
            loaded.versions[kind], loaded.keys[kind] = version, key
            if model is not None:
                if version not in profiles:
                    profiles[version] = input_profile(self.store, version)
                loaded.ranges[kind] = training_ranges(profiles[version].get(kind))
        return loaded

    # --- inputs ---------------------------------------------------------------------------

    def input_flags(self, context_rows=None, feature_rows=None) -> list[str]:
        """Input columns of this answer that lie outside what the serving model trained on: the
        day's context value, or over a quarter of the day's feature rows (the monitor's rule).
        For the log line that CloudWatch alarms on; never part of the answer."""
        if self.loaded is None:
            return []
        flags = []
        for kind, rows, columns in (
            ("regime", context_rows, CONTEXT_FEATURES),
            ("health", feature_rows, ASSET_FEATURES),
        ):
            ranges = self.loaded.ranges.get(kind) or {}
            if rows is None or not ranges:
                continue
            picked = rows[-1:] if kind == "regime" else rows
            try:  # the answer checked these rows already; this only reads them, fast
                matrix = np.array([[r.get(c) for c in columns] for r in picked], dtype=float).reshape(-1, len(columns))
            except (TypeError, ValueError, AttributeError, OverflowError):
                continue  # rows the answer refused or read as arrays: nothing to flag
            for j, name in enumerate(columns):
                if name in ranges:
                    values = matrix[:, j][np.isfinite(matrix[:, j])]
                    low, high = ranges[name]
                    if len(values) and np.mean((values < low) | (values > high)) > OUTSIDE_SHARE:
                        flags.append(name)
        return flags

    def exposure_prior(self) -> dict | None:
        """The exposure prior the serving regime model's training days fit (its artifact's
        ``exposure_prior``); None when the baseline serves or the artifact has none that reads."""
        regime = self.loaded.regime if self.loaded is not None else None
        prior = regime.metadata.get("exposure_prior") if regime is not None else None
        if not isinstance(prior, dict):
            return None
        values = [prior.get(k) for k in ("vol_target", "center", "strength")]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values)
        return prior if numbers and values[0] > 0 and 0 <= values[1] <= 1 else None

    def _keep_or_fall_back(self, reason: str) -> None:
        if self.loaded is not None:
            log.warning("keeping version %s: the new pointer cannot be served (%s)", self.loaded.version, reason)
        else:
            log.warning("serving baselines: %s", reason)
            self.problem = reason

    @property
    def version(self) -> str:
        self.refresh()
        return self.loaded.version if self.loaded else BASELINE_VERSION

    # --- answers --------------------------------------------------------------------------

    def _tag(self, answer: dict, kind: str, trained: bool, reason: str | None) -> dict:
        answer["model_source"] = "trained" if trained else "baseline"
        answer["model_version"] = self.loaded.versions[kind] if trained and self.loaded else BASELINE_VERSION
        if not trained:
            problem = self.loaded.problems.get(kind) if self.loaded else None
            chosen = self.loaded is not None and getattr(self.loaded, kind) is None and problem is None
            answer["fallback_reason"] = (
                reason
                or problem
                or (_baseline_by_choice(kind) if chosen else None)
                or self.problem
                or "no trained model"
            )
        return answer

    def predict_regime(self, context_rows) -> dict:
        """The training guide's regime dict for the last of ``context_rows`` (oldest first; dicts keyed by
        column or rows in CONTEXT_FEATURES order), plus where it came from."""
        self.refresh()
        reason = None
        if self.loaded is not None and self.loaded.regime is not None:
            try:
                return self._tag(self.loaded.regime.predict(context_rows), "regime", True, None)
            except ArtifactError as e:
                reason = f"the trained regime model cannot read these rows: {e}"
                log.warning("regime falls back to the baseline: %s", reason)
        return self._tag(baseline_regime(context_rows), "regime", False, reason)

    def predict_health(self, feature_rows) -> tuple[dict[str, dict], list[str], dict[str, str]]:
        """({symbol: the training guide's health dict plus where it came from}, skipped symbols,
        {symbol: why} of refused rows) for one day's feature rows. Rows with a missing or
        non-finite feature are skipped; a row that cannot be read or lies outside ingest's bounds
        is refused with its reason; every other symbol is answered."""
        self.refresh()
        reason = None
        if self.loaded is not None and self.loaded.health is not None:
            try:
                answers, skipped, refused = self.loaded.health.predict(feature_rows)
                _log_skipped(skipped, refused)
                return _tagged(answers, self._tag({}, "health", True, None)), skipped, refused
            except ArtifactError as e:
                reason = f"the trained health model cannot read these rows: {e}"
                log.warning("health falls back to the baseline: %s", reason)
        answers, skipped, refused = baseline_health_answers(feature_rows)
        _log_skipped(skipped, refused)
        return _tagged(answers, self._tag({}, "health", False, reason)), skipped, refused


def _tagged(answers: dict[str, dict], tag: dict) -> dict[str, dict]:
    """Every asset's answer with the day's one tag (source, version, reason) added in place."""
    for answer in answers.values():
        answer.update(tag)
    return answers


OUTSIDE_SHARE = 0.25  # the monitor's line (monitor/drift.py)


def input_profile(store: Store, version: str | None) -> dict:
    """A version's ``input_profile`` (empty when it predates them, or its manifest or the field
    is damaged: the answer is served all the same, only its out-of-range flags are lost)."""
    if version is None:
        return {}
    profile, damage = registry.manifest_field(store, version, "input_profile")
    if damage:
        log.warning("no input ranges for version %s: %s", version, damage)
    return profile or {}


def training_ranges(profile: object) -> dict[str, tuple[float, float]]:
    """Each input's range on the training window, from one model's profile."""
    out = {}
    for name, column in profile.items() if isinstance(profile, dict) else ():
        span = column.get("range") if isinstance(column, dict) else None
        if isinstance(span, list) and len(span) == 2 and all(isinstance(v, (int, float)) for v in span):
            out[str(name)] = (float(span[0]), float(span[1]))
    return out


def current_model(store: Store, pointer: dict, kind: str) -> RegimeModel | HealthModel | None:
    """The ``kind`` model a latest.json makes current, its sha256 checked; None where it names the
    rule baseline."""
    key = pointer[f"{kind}_model"]
    if key is None:
        return None
    model_class = RegimeModel if kind == "regime" else HealthModel
    return model_class.from_bytes(registry.read_artifact(store, key, pointer.get(f"{kind}_sha256")), key)


def _log_skipped(skipped: list[str], refused: dict[str, str]) -> None:
    if skipped:
        log.warning("skipped %d symbols with missing or non-finite features: %s", len(skipped), ", ".join(skipped[:20]))
    for symbol, why in list(refused.items())[:20]:
        log.warning("refused the row of %s: %s", symbol, why)


def baseline_regime(context_rows) -> dict:
    """The rule baseline's regime dict for the last row."""
    try:
        matrix = as_matrix(context_rows, CONTEXT_FEATURES, "context rows")
    except ArtifactError as e:
        raise InputError(str(e)) from None
    need = min_baseline_days()
    if len(matrix) < need:
        raise InputError(f"context rows: the rules need the last {need} trading days, got {len(matrix)}")
    if not np.isfinite(matrix[:, REQUIRED_CONTEXT_INDEX]).all():
        raise InputError("context rows: SPY columns (spy_return_1d, spy_return_21d, spy_vol_21d) must be finite")
    _, probs = baseline_regimes(matrix)
    return regime_output(probs[-1], baseline_regime_embedding(matrix[-1]))


def baseline_health_answers(feature_rows) -> tuple[dict[str, dict], list[str], dict[str, str]]:
    try:
        symbols, matrix, skipped, refused = asset_rows(feature_rows)
    except ArtifactError as e:
        raise InputError(str(e)) from None
    if not symbols:
        return {}, skipped, refused
    dicts = health_dicts(
        baseline_health(matrix), baseline_health_latent(matrix), matrix, DEFAULT_HEALTH_RULES.vol_boundaries
    )
    return dict(zip(symbols, dicts, strict=True)), skipped, refused
