"""What a version says about itself: the manifest's facts, its fingerprint and its gate record.

The manifest's first six keys are latest.json's seed keys; it records what the gate decided for
each model, on which windows and rows, and whether the run was forced.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from trader_ml import __version__, registry
from trader_ml.monitor.record import input_profiles
from trader_ml.training.gate import MIN_TEST_DAYS, GateDecision
from trader_ml.training.health import health_summary
from trader_ml.training.regime import regime_summary

if TYPE_CHECKING:  # annotations only: the job imports this module
    from trader_ml.release.judge import Candidate
    from trader_ml.training.options import TrainOptions


def run_facts(
    context: pd.DataFrame, features: pd.DataFrame, candidate: Candidate, fingerprint: str, live: dict | None
) -> dict:
    """The manifest's fingerprint, input profiles and the champion's live record."""
    regime_window, health_window = (candidate.regime.metrics["test_window"], candidate.health.metrics["test_window"])
    return {
        "training_fingerprint": fingerprint,
        "input_profile": input_profiles(context, features, regime_window["first_date"], health_window["first_date"]),
        "champion_live_record": live_summary(live),
    }


def live_summary(live: dict | None) -> dict | None:
    """The outgoing champion's live record without its day-by-day series (those are in the report)."""
    if live is None or "unavailable" in live:
        return live
    health = {k: v for k, v in live["health"].items() if k != "daily_rank_correlation"}
    regime = {k: v for k, v in live["regime"].items() if k != "equity"}
    return {**live, "health": health, "regime": regime}


# The settings that change what a run learns or how it is judged (not where it writes, nor how it talks).
FINGERPRINT_OPTIONS = (
    "max_days",
    "regime_max_days",
    "start",
    "end",
    "until",
    "regime_type",
    "health_type",
    "epochs",
    "regime_batch_size",
    "health_batch_size",
    "regime_label_horizon",
    "tolerance",
    "device",
    "seed",
)


def code_fingerprint(package: Path | None = None) -> str:
    """sha256 of what decides a model besides its data and settings: every source file of the
    package but the command line's (which only parses and prints), and the versions of the
    libraries that compute it. A code change on the same data is then a new fingerprint."""
    import numpy
    import torch

    package = package or Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"torch {torch.__version__} numpy {numpy.__version__}".encode())
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if not relative.startswith("cli/"):
            digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def training_fingerprint(
    context: pd.DataFrame, features: pd.DataFrame, options: TrainOptions, code: str | None = None
) -> str:
    """sha256 of the rows a run trains on, its settings and the code that trains (``code``, by
    default ``code_fingerprint()``): two runs with the same fingerprint learn the same models,
    so the second has nothing to publish."""
    digest = hashlib.sha256((code or code_fingerprint()).encode())
    for frame in (context, features):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        digest.update(",".join(map(str, frame.columns)).encode())
    settings = {name: str(getattr(options, name)) for name in FINGERPRINT_OPTIONS}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def describe(
    version: str,
    candidate: Candidate,
    context: pd.DataFrame,
    features: pd.DataFrame,
    decisions: dict[str, GateDecision],
    champions: dict[str, dict],
    options: TrainOptions,
    facts: dict | None = None,
) -> dict:
    """The manifest of a version; its first six keys are latest.json's seed keys. It records what
    the gate decided for each model and whether the run was forced; what is current is for
    latest.json alone to say. ``facts`` are the parts that do not depend on the version's name
    (``run_facts``), computed once per run however many names it tries."""
    regime_m, health_m = candidate.regime.metrics, candidate.health.metrics
    regime_summary_ = regime_summary(regime_m)
    health_summary_ = health_summary(health_m)
    return {
        "version": version,
        "timestamp": registry.utc_timestamp(),  # UTC, as every other time the package writes
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
        "data_window": _data_window(context, features, options),
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
        **(facts or {}),
        "warnings": {"regime": regime_m["warnings"], "health": health_m["warnings"]},
        "gate": _gate_record(decisions, champions, options),
    }


def _data_window(context: pd.DataFrame, features: pd.DataFrame, options: TrainOptions) -> dict:
    return {
        "first_date": str(min(context["date"].min(), features["date"].min()).date()),
        "last_date": str(max(context["date"].max(), features["date"].max()).date()),
        "rows": int(len(context)),
        "feature_rows": int(len(features)),
        "symbols": int(features["symbol"].nunique()),
        "max_days": options.max_days,
        "regime_max_days": options.regime_max_days,
    }


def _gate_record(decisions: dict[str, GateDecision], champions: dict[str, dict], options: TrainOptions) -> dict:
    """What the gate decided for each model, against which champions, and whether it was forced."""
    return {
        "gate_passed": {kind: d.promote for kind, d in decisions.items()},
        "forced": options.force,
        "tolerance": options.tolerance,
        "min_test_days": MIN_TEST_DAYS,
        "champion_versions": champions["versions"],  # the champions judged against
        "champion_notes": champions["notes"],  # why a model had none (baseline, or unloadable)
        **{kind: d.to_dict() for kind, d in decisions.items()},
    }
