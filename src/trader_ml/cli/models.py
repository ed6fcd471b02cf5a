"""``trader-ml models list|show|promote|rollback``: the registry as a user sees it."""

from __future__ import annotations

import argparse
import json

from trader_ml import registry
from trader_ml.cli.args import add_store_args, open_store_from
from trader_ml.errors import TraderMLError
from trader_ml.store import Store


def add_commands(sub) -> None:
    p = sub.add_parser("models", help="list, show, promote or roll back model versions")
    p.add_argument("action", choices=("list", "show", "promote", "rollback"))
    p.add_argument("version", nargs="?", help="for show and promote: a version such as 20260130 or 20260130-2")
    p.add_argument(
        "--model",
        choices=("regime", "health"),
        help="for promote: make only this model of the version current; the other stays as it is (default: both)",
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


def list_versions(store: Store) -> None:
    """The versions: each model's gate verdict and whether latest.json makes it current. A damaged
    latest.json still lets the versions be listed (to choose one to promote); the damage is then
    reported as the command's error."""
    damaged = None
    try:
        current, _ = registry.read_latest(store)
    except registry.DamagedPointer as e:
        current, damaged = None, e
    current_of = {kind: registry.model_version(current, kind) if current else None for kind in registry.KINDS}
    rows = [("current", "version", "created", "regime f1 (baseline)", "gate", "health corr (baseline)", "gate")]
    for version in registry.versions(store):
        m = registry.read_manifest(store, version)
        rm, hm, base = m["regime_metrics"], m["health_metrics"], m["baseline_metrics"]
        rows.append(
            (
                "+".join(kind for kind in registry.KINDS if current_of[kind] == version) or "",
                version,
                m["timestamp"],
                f"{_fmt(rm['test_f1_macro'])} ({_fmt(base['regime']['test_f1_macro'])})",
                _gate(m, "regime"),
                f"{_fmt(hm['test_health_correlation'])} ({_fmt(base['health']['test_health_correlation'])})",
                _gate(m, "health"),
            )
        )
    if len(rows) == 1:
        print(f"no model versions in {store.url}: train some with trader-ml train --store {store.url}")
        if damaged is not None:
            raise damaged
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    count = len(rows) - 1
    served = ", ".join(f"{kind} {current_of[kind] or 'rule baseline'}" for kind in registry.KINDS)
    print(f"current (models/latest.json): {served if current else 'nothing; the rule baselines serve'}")
    print(f"{count} version{'s' if count != 1 else ''} in {store.url}")
    if damaged is not None:
        raise damaged


def show(store: Store, version: str) -> None:
    manifest = registry.read_manifest(store, version)
    checks = {}
    for kind in ("regime", "health"):
        try:
            registry.read_artifact(store, manifest[f"{kind}_model"], manifest[f"{kind}_sha256"])
            checks[kind] = "sha256 ok"
        except TraderMLError as e:
            checks[kind] = f"BROKEN: {e}"
    print(json.dumps({**manifest, "artifact_checks": checks}, indent=2))


def cmd_models(args: argparse.Namespace) -> int:
    store = open_store_from(args)
    if args.action in ("show", "promote") and not args.version:
        raise TraderMLError(f"models {args.action} needs a VERSION (see trader-ml models list)")
    if args.action == "list":
        list_versions(store)
    elif args.action == "show":
        show(store, args.version)
    elif args.action == "promote":
        kinds = (args.model,) if args.model else registry.KINDS
        pointer = registry.promote(store, args.version, kinds, log=print)
        print(f"promoted {pointer['version']} ({' and '.join(kinds)}); previous: {pointer['previous_version']}")
        print(f"current: {registry.describe_pointer(pointer)}")
    else:
        pointer = registry.rollback(store)
        print(f"rolled back to {pointer['version']}; previous: {pointer['previous_version']}")
        print(f"current: {registry.describe_pointer(pointer)}")
    return 0
