"""Where a version's local copies land: the output directory, or a run folder when its names are taken."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

from trader_ml.store import LocalStore

if TYPE_CHECKING:
    from trader_ml.release.judge import Candidate

OUTPUT_FILES = ("regime_v{}.onnx", "health_v{}.onnx", "manifest_v{}.json", "report_v{}.html")


def output_folder(output_dir: str, version: str, now: dt.datetime | None = None) -> LocalStore:
    """Where a version's local copies go: the output directory itself, or, when an earlier run
    (another store's, or a --skip-upload run) already wrote that version's names there, a
    subfolder named after this run's UTC time. A local copy is never overwritten, and its name
    always says the version it holds."""
    folder = LocalStore(output_dir)
    names = [pattern.format(version) for pattern in OUTPUT_FILES]
    if not any(folder.exists(name) for name in names):
        return folder
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("run-%Y%m%dT%H%M%SZ")
    run = 1
    while True:
        sub = LocalStore(folder.root / (stamp if run == 1 else f"{stamp}-{run}"))
        if not any(sub.exists(name) for name in names):
            return sub
        run += 1


def write_outputs(output_dir: str, version: str, candidate: Candidate, manifest: dict) -> list[Path]:
    """The artifacts and the manifest in the local output directory, under names no earlier run
    used; returns their paths and the report's (written later)."""
    folder = output_folder(output_dir, version)
    names = [pattern.format(version) for pattern in OUTPUT_FILES]
    contents = (candidate.regime_onnx, candidate.health_onnx, json.dumps(manifest, indent=2).encode())
    for name, data in zip(names, contents, strict=False):
        folder.create(name, data)
    return [folder.root / name for name in names]
