"""``trader-ml models list|show|add|promote|rollback|prune``: the registry as a user sees it."""

from __future__ import annotations

import argparse
import json
import sys

from trader_ml import registry, safejson
from trader_ml.cli.args import add_store_args, open_store_from
from trader_ml.errors import TraderMLError
from trader_ml.store import Store


def add_commands(sub) -> None:
    p = sub.add_parser("models", help="list, show, add, promote, roll back or prune model versions")
    p.add_argument("action", choices=("list", "show", "add", "promote", "rollback", "prune"))
    p.add_argument(
        "version",
        nargs="?",
        help="for show and promote: a version such as 20260130 or 20260130-2; for add: an .onnx file that "
        "train-regime or train-health (train_regime.py, train_health.py) wrote",
    )
    p.add_argument(
        "--promote",
        action="store_true",
        help="for add: also make the added model current (your decision, as models promote: no gate)",
    )
    p.add_argument(
        "--model",
        choices=("regime", "health"),
        help="for promote: make only this model of the version current; the other stays as it is (default: both)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="for promote: make current a model whose gate failed (your decision; the manifest keeps the verdict)",
    )
    p.add_argument(
        "--data",
        metavar="PARQUET",
        help="for add: the table the model was trained on (what --data was for train-regime or train-health): "
        "its input profile is recorded so that monitor can check drift",
    )
    add_store_args(p)
    p.set_defaults(func=cmd_models)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _gate(manifest: dict, kind: str) -> str:
    gate = manifest.get("gate", {})
    passed = gate.get("gate_passed", {}).get(kind, gate.get("promoted"))  # "promoted": older manifests
    word = "-" if passed is None else "passed" if passed else "failed"
    return f"{word}, forced" if gate.get("forced") else word


def stored_versions(store: Store, pointer: dict | None) -> list[str]:
    """Every version with a manifest, and every one latest.json names (a version whose manifest
    was deleted still serves). Artifacts with neither are a half-published version: ``orphans``."""
    found = set(registry.versions(store))
    if pointer:
        found.update(v for v in (registry.model_version(pointer, k) for k in registry.KINDS) if v)
    return sorted(found, key=registry.version_order)


def orphans(store: Store, pointer: dict | None, listed: list[str] | None = None) -> dict[str, list[str]]:
    """version -> its artifact keys, for the versions a publish stopped before their manifest
    (a killed run, a lost connection) and latest.json does not name: nothing reads them.
    ``listed``: ``stored_versions``, when the caller has it already."""
    listed = set(stored_versions(store, pointer) if listed is None else listed)
    out: dict[str, list[str]] = {}
    for key in store.list(f"{registry.MODELS_PREFIX}"):
        for kind in registry.KINDS:
            if registry.ARTIFACT[kind].fullmatch(key):
                version = registry.model_version({f"{kind}_model": key}, kind)
                if version not in listed:
                    out.setdefault(version, []).append(key)
    return out


def broken_current(store: Store, pointer: dict | None) -> dict[str, str]:
    """kind -> why the artifact latest.json makes current fails its check (serving then answers
    that model with the rule baseline)."""
    broken = {}
    for kind in registry.KINDS:
        if pointer and pointer[f"{kind}_model"] is not None:
            try:
                registry.read_artifact(store, pointer[f"{kind}_model"], pointer.get(f"{kind}_sha256"))
            except TraderMLError as e:
                broken[kind] = str(e)
    return broken


def _row(store: Store, version: str, current: str) -> tuple[tuple[str, ...], str | None]:
    """A version's row, and what is wrong with its manifest if it cannot be read."""
    try:
        m = registry.read_manifest(store, version)
        rm, hm, base = m["regime_metrics"], m["health_metrics"], m["baseline_metrics"]
        return (
            current,
            version,
            str(m["timestamp"]),
            f"{_fmt(rm.get('test_f1_macro'))} ({_fmt(base.get('regime', {}).get('test_f1_macro'))})",
            _gate(m, "regime"),
            f"{_fmt(hm.get('test_health_correlation'))} ({_fmt(base.get('health', {}).get('test_health_correlation'))})",
            _gate(m, "health"),
        ), None
    except (TraderMLError, AttributeError, TypeError) as e:
        problem = str(e) if isinstance(e, TraderMLError) else f"{registry.manifest_key(version)} is damaged"
        return (current, version, "?", "manifest unreadable", "-", "-", "-"), problem


SHORT_VERDICT = {
    "in line": "in line",
    "worse than": "WORSE",  # than expected, the baseline or buy-and-hold
    "too few days": "too few days",
    "no expectation": "no expectation",
}


# What models list reads of monitoring/latest.json.
RECORD_SHAPE = {
    "through": str,
    **{
        kind: {"verdict": str, "expected": safejson.Optional({"version": safejson.Optional(str)})}
        for kind in registry.KINDS
    },
}


def live_verdicts(store: Store) -> tuple[dict[str, str], str | None]:
    """(version -> the newest monitoring record's verdicts for it, what is wrong with the record
    when it cannot be read): trader-ml monitor writes it."""
    from trader_ml.errors import NotFoundError

    key = "monitoring/latest.json"
    try:
        record = safejson.loads_shaped(store.read(key), store.describe(key), RECORD_SHAPE)
    except NotFoundError:
        return {}, None
    except TraderMLError as e:
        return {}, str(e)
    out: dict[str, list[str]] = {}
    for kind in registry.KINDS:
        part = record[kind]
        version = (part["expected"] or {}).get("version")
        word = next((w for k, w in SHORT_VERDICT.items() if part["verdict"].startswith(k)), None)
        if version and word:
            out.setdefault(version, []).append(f"{kind} {word}")
    return {v: f"{', '.join(words)} (to {record['through'][:10]})" for v, words in out.items()}, None


def list_versions(store: Store) -> None:
    """The versions: each model's gate verdict and whether latest.json makes it current. What can
    be read is listed; what cannot (a damaged latest.json or manifest, a current artifact that
    fails its check) is named after the table and makes the command's exit code 2."""
    damaged = None
    try:
        current, _ = registry.read_latest(store)
    except registry.DamagedPointer as e:
        current, damaged = None, e
    current_of = {kind: registry.model_version(current, kind) if current else None for kind in registry.KINDS}
    broken = broken_current(store, current)
    rows = [("current", "version", "created", "regime f1 (baseline)", "gate", "health corr (baseline)", "gate", "live")]
    problems = []
    live, live_damage = live_verdicts(store)
    listed = stored_versions(store, current)
    for version in listed:
        kinds = [f"{k}(broken)" if k in broken else k for k in registry.KINDS if current_of[k] == version]
        row, problem = _row(store, version, "+".join(kinds))
        rows.append((*row, live.get(version, "")))
        if problem:
            problems.append(problem)
    if len(rows) == 1:
        print(f"no model versions in {store.url}: train some with trader-ml train --store {store.url}")
        if damaged is not None:
            raise damaged
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    count = len(rows) - 1
    served = ", ".join(
        f"{kind} {current_of[kind] or 'rule baseline'}"
        + (" (broken: the rule baseline answers)" if kind in broken else "")
        for kind in registry.KINDS
    )
    print(f"current (models/latest.json): {served if current else 'nothing; the rule baselines serve'}")
    print(f"{count} version{'s' if count != 1 else ''} in {store.url}")
    _notes(store, orphans(store, current, listed), live_damage)
    if damaged is not None:
        raise damaged
    problems += [f"the current {kind} model cannot be served: {why}" for kind, why in broken.items()]
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise registry.RegistryError(f"{problems[0]}{more}; promote or roll back to a version that reads whole")


def _notes(store: Store, half_published: dict[str, list[str]], live_damage: str | None) -> None:
    """What models list leaves out and why, on stderr: none of it stops the listing."""
    if live_damage:
        print(f"warning: the live column is empty: {live_damage}", file=sys.stderr)
    for version, keys in half_published.items():
        print(
            f"note: version {version} was half published ({', '.join(keys)} without a manifest) and is not listed; "
            f"trader-ml models prune --store {store.url} removes it",
            file=sys.stderr,
        )


def prune(store: Store) -> None:
    """Remove the artifacts of half-published versions: no manifest, and latest.json does not name them."""
    current, _ = registry.read_latest(store)
    found = orphans(store, current)
    for version, keys in found.items():
        store.delete_many(keys)
        print(f"removed half-published version {version}: {', '.join(keys)}")
    if not found:
        print(f"nothing to prune in {store.url}: every stored artifact belongs to a listed version")


def added_profile(kind: str, data: str | None, window: dict) -> dict | None:
    """The input profile of an added model, from the table it was trained on: its days before the
    model's test window (as training records it); None without the table."""
    if data is None:
        return None
    import pandas as pd

    from trader_ml.data.partitions import read_file
    from trader_ml.monitor import drift
    from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES

    frame = read_file(data, "context" if kind == "regime" else "features")
    first = window.get("first_date")
    if first:
        frame = frame[pd.DatetimeIndex(frame["date"]) < pd.Timestamp(first)]
    if frame.empty:
        raise TraderMLError(f"{data}: no rows before the model's test window ({first}): is it the table it trained on?")
    return {kind: drift.input_profile(frame, CONTEXT_FEATURES if kind == "regime" else ASSET_FEATURES)}


def read_model_file(path: str):
    """(file, bytes, kind, metrics, metrics file) of a model file from the single-model commands,
    after every check serving makes; its metrics from the ``.metrics.json`` beside it, if any."""
    from pathlib import Path

    from trader_ml.serving.artifacts import HealthModel, OnnxArtifact, RegimeModel

    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as e:
        raise TraderMLError(f"{path}: cannot read it ({e.strerror})") from None
    kind = OnnxArtifact(data, path).metadata.get("kind")
    if kind not in registry.KINDS:
        raise TraderMLError(f"{path}: holds a {str(kind)[:20]!r} model, not a regime or health model")
    (RegimeModel if kind == "regime" else HealthModel).from_bytes(data, path)  # every check serving makes
    sidecar = file.with_name(file.stem + ".metrics.json")
    metrics = safejson.loads_object(sidecar.read_bytes(), str(sidecar)) if sidecar.is_file() else {}
    return file, data, kind, metrics, sidecar


def add(store: Store, path: str, promote: bool, table: str | None = None) -> None:
    """Store a model file from the single-model commands as a version of its own, after the
    checks serving makes (sha256 recorded, metadata, inputs and outputs); with ``promote`` make
    it current. The other model of the pointer stays as it is. With ``table`` (the one it was
    trained on) its input profile is recorded, so that the monitor can check drift."""
    import datetime as dt

    from trader_ml import __version__

    file, data, kind, metrics, sidecar = read_model_file(path)
    summary = {k: v for k, v in (metrics.get("model") or {}).items() if isinstance(v, (int, float))}
    now = dt.datetime.now(dt.UTC)
    profile = added_profile(kind, table, metrics.get("test_window") or {})

    def describe(version: str) -> dict:
        fields = {f"{k}_{f}": None for k in registry.KINDS for f in ("model", "sha256")}
        fields |= {f"{kind}_model": registry.artifact_key(kind, version), f"{kind}_sha256": registry.sha256(data)}
        window = metrics.get("test_window") or {}
        return {
            "version": version,
            "timestamp": registry.utc_timestamp(now),
            "regime_model": fields["regime_model"],
            "health_model": fields["health_model"],
            **{
                f"{k}_metrics": registry.seed_metrics(
                    k, {**summary, "model_type": metrics.get("metadata", {}).get("model_type")} if k == kind else {}
                )
                for k in registry.KINDS
            },
            "regime_sha256": fields["regime_sha256"],
            "health_sha256": fields["health_sha256"],
            "data_window": {"first_date": window.get("first_date"), "last_date": window.get("last_date")},
            "package_version": __version__,
            "baseline_metrics": {"regime": {}, "health": {}},
            "added": {"file": str(file.absolute()), "kind": kind, "metrics_file": str(sidecar) if metrics else None},
            "gate": {"gate_passed": {kind: None}, "forced": False, "note": "added by trader-ml models add: not gated"},
            **({"input_profile": profile} if profile else {}),
        }

    manifest = registry.publish(store, now.date(), {kind: data}, describe, log=print)
    version = manifest["version"]
    if profile is None:
        print(
            f"note: no input profile recorded, so monitor cannot check drift for version {version}; give the "
            f"table it was trained on to record one: trader-ml models add {path} --data TABLE.parquet"
        )
    if promote:
        pointer = registry.promote(store, version, (kind,), log=print)
        print(f"promoted the {kind} model of {version}; current: {registry.describe_pointer(pointer)}")
    else:
        print(f"make it current with trader-ml models promote {version} --model {kind} --store {store.url}")


def show(store: Store, version: str) -> None:
    manifest = registry.read_manifest(store, version)
    checks = {}
    for kind in ("regime", "health"):
        if manifest[f"{kind}_model"] is None:
            checks[kind] = "not in this version"
            continue
        try:
            registry.read_artifact(store, manifest[f"{kind}_model"], manifest[f"{kind}_sha256"])
            checks[kind] = "sha256 ok"
        except TraderMLError as e:
            checks[kind] = f"BROKEN: {e}"
    monitoring = {}
    for field in registry.MONITORING_FIELDS:
        value, damage = registry.checked_field(manifest, field, store.describe(registry.manifest_key(version)))
        monitoring[field] = f"DAMAGED: {damage}" if damage else "not recorded" if value is None else "ok"
    print(json.dumps({**manifest, "artifact_checks": checks, "monitoring_checks": monitoring}, indent=2))


def cmd_models(args: argparse.Namespace) -> int:
    store = open_store_from(args)
    if args.action in ("show", "promote") and not args.version:
        raise TraderMLError(f"models {args.action} needs a VERSION (see trader-ml models list)")
    if args.action == "add":
        if not args.version:
            raise TraderMLError("models add needs a FILE: an .onnx file that train-regime or train-health wrote")
        add(store, args.version, args.promote, args.data)
    elif args.action == "list":
        list_versions(store)
    elif args.action == "prune":
        prune(store)
    elif args.action == "show":
        show(store, args.version)
    elif args.action == "promote":
        kinds = (args.model,) if args.model else registry.KINDS
        check_gate(store, args.version, kinds, args.force)
        pointer = registry.promote(store, args.version, kinds, log=print)
        print(f"promoted {pointer['version']} ({' and '.join(kinds)}){_previous(pointer)}")
        print(f"current: {registry.describe_pointer(pointer)}")
    else:
        pointer = registry.rollback(store)
        print(f"rolled back to {pointer['version']}{_previous(pointer)}")
        print(f"current: {registry.describe_pointer(pointer)}")
    return 0


def _previous(pointer: dict) -> str:
    before = pointer.get("previous_version")
    return f"; previous: {before}" if before else "; no earlier version in latest.json's history"


def check_gate(store: Store, version: str, kinds: tuple[str, ...], force: bool) -> None:
    """Refuse to promote a model whose gate failed unless ``force``; with it, warn."""
    manifest = registry.read_manifest(store, version)
    gate = manifest.get("gate") if isinstance(manifest.get("gate"), dict) else {}
    passed = gate.get("gate_passed") if isinstance(gate.get("gate_passed"), dict) else {}
    failed = [k for k in kinds if passed.get(k) is False]
    if not failed:
        return
    # A version published with train --force was made current past its gate once already: promoting
    # it again (repairing latest.json, say) repeats that decision, said but not asked again.
    force = force or gate.get("forced") is True
    why = "; ".join(f"{k}: {str((gate.get(k) or {}).get('reason', 'its gate failed'))[:300]}" for k in failed)
    if not force:
        raise TraderMLError(
            f"the gate of {version} failed for the {' and '.join(failed)} model ({why}); "
            f"promote it anyway with --force, or choose the model with --model"
        )
    print(f"warning: promoting {' and '.join(failed)} of {version} although its gate failed ({why})", file=sys.stderr)
