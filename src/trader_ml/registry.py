"""Model versions in a store: immutable artifacts, a manifest per version, and ``latest.json``.

A version ``YYYYMMDD`` (``YYYYMMDD-2``, ``-3`` ... for more runs that day) owns
``models/regime_vV.onnx``, ``models/health_vV.onnx`` and ``models/manifest_vV.json``, all
created only if absent. ``models/latest.json`` keeps the training guide's keys, adds checksums, data
window, baselines and history, and moves only by compare-and-swap. Each model is current on its
own: ``regime_model`` and ``health_model`` may name versions of different dates, or ``null``
where the rule baseline serves that model. numpy-free, torch-free.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable

from trader_ml import safejson
from trader_ml.errors import NotFoundError, PreconditionFailed, StoreError, TraderMLError
from trader_ml.schema import KINDS, LATEST_KEY, MODELS_PREFIX, REPORTS_PREFIX
from trader_ml.store import Store

SEED_KEYS = ("version", "timestamp", "regime_model", "health_model", "regime_metrics", "health_metrics")
MANIFEST_KEYS = (*SEED_KEYS, "regime_sha256", "health_sha256", "baseline_metrics")
HISTORY_LENGTH = 50
# Patterns are matched whole (fullmatch): "$" would let a trailing newline through.
VERSION = re.compile(r"\d{8}(-\d+)?")


class RegistryError(TraderMLError):
    """The registry's objects are missing, damaged or inconsistent."""


class DamagedPointer(RegistryError):
    """latest.json exists but cannot be read as a pointer; ``promote`` repairs it."""

    def __init__(self, message: str, data: bytes, etag: str) -> None:
        super().__init__(message)
        self.data, self.etag = data, etag


class LostRace(TraderMLError):
    """latest.json moved while this process was deciding."""


def utc_timestamp(now: dt.datetime | None = None) -> str:
    """A manifest's ``timestamp``: UTC, written as the training guide writes it (no offset)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_key(kind: str, version: str) -> str:
    return f"{MODELS_PREFIX}{kind}_v{version}.onnx"


def report_key(version: str) -> str:
    """The training report of a version (written beside its models, read by trader-ml report)."""
    return f"{REPORTS_PREFIX}v{version}/index.html"


def manifest_key(version: str) -> str:
    return f"{MODELS_PREFIX}manifest_v{version}.json"


def version_order(version: str) -> tuple[str, int]:
    day, _, run = version.partition("-")
    return day, int(run or 1)


def versions(store: Store) -> list[str]:
    """Every version with a manifest, oldest first."""
    found = []
    for key in store.list(f"{MODELS_PREFIX}manifest_v"):
        version = key.removeprefix(f"{MODELS_PREFIX}manifest_v").removesuffix(".json")
        if VERSION.fullmatch(version):
            found.append(version)
    return sorted(found, key=version_order)


def candidate_versions(store: Store, day: dt.date):
    """``YYYYMMDD``, then ``YYYYMMDD-2``, ``-3``, ... skipping names any object already uses."""
    stem = day.strftime("%Y%m%d")
    taken = {k for k in store.list(f"{MODELS_PREFIX}") if stem in k}
    run = 1
    while True:
        version = stem if run == 1 else f"{stem}-{run}"
        if not any(f"_v{version}." in k for k in taken):
            yield version
        run += 1


SHA256 = re.compile(r"[0-9a-f]{64}")
ARTIFACT = {kind: re.compile(rf"{MODELS_PREFIX}{kind}_v\d{{8}}(-\d+)?\.onnx") for kind in ("regime", "health")}
MAX_POINTER_BYTES = 1 << 20  # a pointer is a few kB; a huge one is damage, not a pointer


def check_pointer(pointer: object, where: str) -> dict:
    """A latest.json whose every field has the type it must: the training guide's keys, a
    version name, artifacts inside models/, sha256 checksums, objects for the metrics."""
    if not isinstance(pointer, dict):
        raise RegistryError(f"{where}: expected a JSON object")
    missing = [k for k in SEED_KEYS if k not in pointer]
    if missing:
        raise RegistryError(f"{where}: missing key(s) {', '.join(missing)}")
    if not isinstance(pointer["version"], str) or not VERSION.fullmatch(pointer["version"]):
        raise RegistryError(f"{where}: version {str(pointer['version'])[:40]!r} is not YYYYMMDD or YYYYMMDD-N")
    for kind in KINDS:
        path = pointer[f"{kind}_model"]
        checksum = pointer.get(f"{kind}_sha256")
        if path is None:  # the rule baseline serves this model
            if checksum is not None:
                raise RegistryError(f"{where}: {kind}_sha256 is set but {kind}_model is null")
        elif not isinstance(path, str) or not ARTIFACT[kind].fullmatch(path):
            raise RegistryError(f"{where}: {kind}_model {str(path)[:60]!r} points outside {MODELS_PREFIX}")
        elif checksum is not None and not (isinstance(checksum, str) and SHA256.fullmatch(checksum)):
            raise RegistryError(f"{where}: {kind}_sha256 {str(checksum)[:70]!r} is not a sha256 checksum")
        if not isinstance(pointer[f"{kind}_metrics"], dict):
            raise RegistryError(f"{where}: {kind}_metrics is not an object")
    if not isinstance(pointer["timestamp"], str):
        raise RegistryError(f"{where}: timestamp is not a string")
    history = pointer.get("history", [])
    if not isinstance(history, list) or not all(_history_entry(entry) for entry in history):
        raise RegistryError(f"{where}: history is not a list of versions")
    return pointer


def _history_entry(entry: object) -> dict | None:
    """A history entry as {"version", "regime", "health"} (the version each model came from, None
    for a baseline); a bare version string, as older pointers wrote, means both models of it."""
    if isinstance(entry, str):
        return {"version": entry, "regime": entry, "health": entry} if VERSION.fullmatch(entry) else None
    if not isinstance(entry, dict) or set(entry) != {"version", *KINDS}:
        return None
    values = [entry["version"], *(entry[k] for k in KINDS if entry[k] is not None)]
    return entry if all(isinstance(v, str) and VERSION.fullmatch(v) for v in values) else None


def model_version(pointer: dict, kind: str) -> str | None:
    """The version whose ``kind`` model the pointer makes current; None where the baseline serves."""
    path = pointer[f"{kind}_model"]
    return None if path is None else path.removeprefix(f"{MODELS_PREFIX}{kind}_v").removesuffix(".onnx")


def describe_pointer(pointer: dict | None) -> str:
    """What a latest.json makes current, model by model."""
    if pointer is None:
        return "no trained model yet; the rule baselines serve"
    return ", ".join(f"{kind} {model_version(pointer, kind) or 'rule baseline'}" for kind in KINDS)


def read_latest(store: Store) -> tuple[dict | None, str | None]:
    """(pointer, ETag), or (None, None) when no model was ever promoted."""
    try:
        if store.size(LATEST_KEY) > MAX_POINTER_BYTES:
            raise RegistryError(
                f"{store.describe(LATEST_KEY)} is over {MAX_POINTER_BYTES} bytes: not a pointer; "
                f"replace it with trader-ml models promote VERSION --store {store.url}"
            )
        data, etag = store.read_versioned(LATEST_KEY)
    except NotFoundError:
        return None, None
    where = store.describe(LATEST_KEY)
    repair = (
        f"repair it with trader-ml models promote VERSION --store {store.url} "
        "(the damaged file is kept aside; trader-ml models list shows the versions)"
    )
    try:
        pointer = safejson.loads(data, where)
    except safejson.DamagedJSON as e:
        raise DamagedPointer(f"{e}; {repair}", data, etag) from None
    try:
        return check_pointer(pointer, where), etag
    except RegistryError as e:
        raise DamagedPointer(f"{e}; {repair}", data, etag) from None


def keep_damaged(store: Store, damaged: DamagedPointer, now: dt.datetime | None = None) -> str:
    """Copy a damaged latest.json aside (``latest.json.damaged-<UTC time>``) before replacing it."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%f")
    key = f"{LATEST_KEY}.damaged-{stamp}"
    store.create(key, damaged.data)
    return key


def read_manifest(store: Store, version: str) -> dict:
    """A version's manifest, its shape checked: RegistryError naming the file when it is damaged."""
    if not isinstance(version, str) or not VERSION.fullmatch(version):
        raise RegistryError(f"invalid version {str(version)[:40]!r}: expected YYYYMMDD or YYYYMMDD-N")
    key = manifest_key(version)
    try:
        manifest = safejson.loads_object(store.read(key), store.describe(key), MANIFEST_KEYS)
    except NotFoundError:
        known = ", ".join(versions(store)[-5:]) or "none"
        raise RegistryError(f"no version {version} in {store.url} (latest versions: {known})") from None
    except safejson.DamagedJSON as e:
        raise RegistryError(str(e)) from None
    if not all(isinstance(manifest[k], dict) for k in ("regime_metrics", "health_metrics", "baseline_metrics")):
        raise RegistryError(f"{store.describe(key)}: its metrics are not objects (damaged)")
    return manifest


# The fields a manifest records for the monitor and later runs, and the shape their readers need.
MONITORING_FIELDS = {
    "training_fingerprint": str,
    "input_profile": safejson.Each(dict),  # per model, per column: drift.readable judges each column
    "champion_live_record": dict,
    "test_windows": safejson.Each(safejson.Optional(dict)),
}


def manifest_field(store: Store, version: str, field: str) -> tuple[object | None, str | None]:
    """(value, None) of one of a manifest's ``MONITORING_FIELDS``, (None, None) when the version
    records none, (None, why) when the manifest or that field is damaged: its readers go on
    without it, saying why."""
    try:
        manifest = read_manifest(store, version)
    except TraderMLError as e:
        return None, str(e)[:300]
    return checked_field(manifest, field, store.describe(manifest_key(version)))


def checked_field(manifest: dict, field: str, where: str) -> tuple[object | None, str | None]:
    """``manifest_field`` for a manifest already read."""
    value = manifest.get(field)
    found = None if value is None else safejson.problem(value, MONITORING_FIELDS[field], field)
    if found:
        return None, f"{where}: {found[:200]} (damaged)"
    return value, None


def read_artifact(store: Store, key: str, expected_sha256: str) -> bytes:
    """An artifact's bytes, refused unless they hash to what the registry recorded."""
    if not (isinstance(expected_sha256, str) and SHA256.fullmatch(expected_sha256)):
        raise RegistryError(f"{store.describe(key)}: no valid sha256 recorded for it, so it is not loaded")
    data = store.read(key)
    actual = sha256(data)
    if actual != expected_sha256:
        raise RegistryError(
            f"{store.describe(key)}: sha256 {actual[:12]}... does not match the recorded {expected_sha256[:12]}..."
        )
    return data


def publish(
    store: Store,
    day: dt.date,
    artifacts: dict[str, bytes],
    describe: Callable[[str], dict],
    log: Callable[[str], None] = print,
) -> dict:
    """Store a new version: its artifacts, then its manifest ``describe(version)``, each created
    only if absent. A version taken by a concurrent run moves to the next name. Returns the
    manifest. On failure, says which objects were written; latest.json is never touched."""
    written: list[str] = []
    try:
        for version in candidate_versions(store, day):
            first, *rest = sorted(artifacts)
            try:
                store.create(artifact_key(first, version), artifacts[first])  # claims the version
            except PreconditionFailed:
                continue
            written.append(artifact_key(first, version))
            for kind in rest:
                store.create(artifact_key(kind, version), artifacts[kind])
                written.append(artifact_key(kind, version))
            manifest = describe(version)
            store.create(manifest_key(version), json.dumps(manifest, indent=2).encode())
            written.append(manifest_key(version))
            log(f"stored version {version}: {', '.join(written)}")
            return manifest
    except StoreError as e:
        done = ", ".join(written) or "nothing"
        raise StoreError(f"upload failed ({e}); written before the failure: {done}; latest.json is unchanged") from None
    raise AssertionError("unreachable")


# The training guide's metric keys of each model, in its order: latest.json always has them
# (null where the model serving has no such figure: the rule baseline has no reconstruction).
SEED_METRICS = {
    "regime": ("test_accuracy", "test_f1_macro", "model_type"),
    "health": ("test_recon_mse", "test_health_correlation", "model_type"),
}


def seed_metrics(kind: str, metrics: dict) -> dict:
    """``metrics`` with the training guide's keys first, each present."""
    return {**{k: metrics.get(k) for k in SEED_METRICS[kind]}, **metrics}


def baseline_fields(kind: str, manifest: dict) -> dict:
    """The pointer fields that make the rule baseline serve ``kind``, with the baseline's metrics
    from the run that measured them."""
    metrics = seed_metrics(kind, {**manifest["baseline_metrics"][kind], "model_type": "baseline"})
    return {f"{kind}_model": None, f"{kind}_sha256": None, f"{kind}_metrics": metrics}


def model_fields(kind: str, source: dict) -> dict:
    """The pointer fields of ``kind`` as a manifest or an earlier pointer holds them."""
    return {f"{kind}_{field}": source.get(f"{kind}_{field}") for field in ("model", "sha256", "metrics")}


def pointer_for(
    manifest: dict, previous: dict | None, kinds: tuple[str, ...] = KINDS, now: dt.datetime | None = None
) -> dict:
    """The latest.json that makes ``manifest``'s models of ``kinds`` current; each other model
    stays as ``previous`` had it, or the baseline when there was none."""
    fields = {}
    for kind in KINDS:
        if kind in kinds:
            fields.update(model_fields(kind, manifest))
        elif previous is not None:
            fields.update(model_fields(kind, previous))
        else:
            fields.update(baseline_fields(kind, manifest))
    entry = {"version": manifest["version"], **{k: model_version(fields, k) for k in KINDS}}
    history = [_history_entry(e) for e in (previous or {}).get("history", [])]
    history = ([e for e in history if e != entry] + [entry])[-HISTORY_LENGTH:]
    return _pointer(manifest, fields, history, now)


def _pointer(manifest: dict, fields: dict, history: list[dict], now: dt.datetime | None) -> dict:
    """latest.json's keys in the training guide's order, then this project's."""
    return {
        "version": manifest["version"],
        "timestamp": manifest["timestamp"],
        "regime_model": fields["regime_model"],
        "health_model": fields["health_model"],
        "regime_metrics": fields["regime_metrics"],
        "health_metrics": fields["health_metrics"],
        "regime_sha256": fields["regime_sha256"],
        "health_sha256": fields["health_sha256"],
        "data_window": manifest["data_window"],
        "package_version": manifest["package_version"],
        "baseline_metrics": manifest["baseline_metrics"],
        "previous_version": history[-2]["version"] if len(history) > 1 else None,
        "history": history,
        "promoted_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
    }


def swap_latest(store: Store, pointer: dict, expected_etag: str | None) -> str:
    """Move latest.json from the version read (``expected_etag``) to ``pointer``; LostRace if it
    moved meanwhile."""
    data = json.dumps(pointer, indent=2).encode()
    try:
        return store.swap(LATEST_KEY, data, expected_etag)
    except PreconditionFailed:
        now, _ = read_latest(store)
        current = now["version"] if now else "nothing"
        raise LostRace(
            f"{LATEST_KEY} moved while this run was deciding (it now points to version {current}); "
            f"version {pointer['version']} stays stored but not current: compare with trader-ml models list, "
            f"then trader-ml models promote {pointer['version']} if it should win"
        ) from None


def promote(
    store: Store, version: str, kinds: tuple[str, ...] = KINDS, log: Callable[[str], None] = lambda _: None
) -> dict:
    """Make a stored version's models of ``kinds`` current (a user's decision: no gate)."""
    manifest = read_manifest(store, version)
    for kind in kinds:
        read_artifact(store, manifest[f"{kind}_model"], manifest[f"{kind}_sha256"])
    try:
        previous, etag = read_latest(store)
    except DamagedPointer as damaged:  # the repair the error message promises
        previous, etag = None, damaged.etag
        log(f"{store.describe(LATEST_KEY)} was damaged; its bytes are kept as {keep_damaged(store, damaged)}")
    pointer = pointer_for(manifest, previous, kinds)
    swap_latest(store, pointer, etag)
    return pointer


def rollback(store: Store) -> dict:
    """Make latest.json what it was before its last move: each model back to the version (or
    baseline) the previous entry of its history names."""
    try:
        previous, etag = read_latest(store)
    except DamagedPointer:
        raise RegistryError(
            f"{store.describe(LATEST_KEY)} is damaged, so its history of versions is lost and there is nothing "
            f"to roll back through; make a version current with trader-ml models promote VERSION --store {store.url} "
            "(it keeps the damaged file aside)"
        ) from None
    if previous is None:
        raise RegistryError(f"no {LATEST_KEY} in {store.url}: nothing to roll back")
    history = [_history_entry(e) for e in previous.get("history", [])]
    if len(history) < 2:
        raise RegistryError(f"{LATEST_KEY} has no previous version to roll back to")
    target = history[-2]
    manifest = read_manifest(store, target["version"])
    fields = {}
    for kind in KINDS:
        source = target[kind]
        if source is None:
            fields.update(baseline_fields(kind, manifest))
        else:
            fields.update(model_fields(kind, manifest if source == target["version"] else read_manifest(store, source)))
            read_artifact(store, fields[f"{kind}_model"], fields[f"{kind}_sha256"])
    pointer = _pointer(manifest, fields, history[:-1], None)
    swap_latest(store, pointer, etag)
    return pointer
