"""Judging a candidate: its test windows, its exported models' answers there, and the gate's
decision for each model against the rule baseline and the current champion.

The champion is run from its stored ONNX file by the serving code itself, so it is judged exactly
as it is served; that is why this stage comes after serving.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader_ml import registry
from trader_ml.baselines import baseline_regimes
from trader_ml.errors import TraderMLError
from trader_ml.health_inputs import RAW_COLUMNS, frame_raw
from trader_ml.schema import CONTEXT_FEATURES
from trader_ml.serving.artifacts import ArtifactError, HealthModel, RegimeModel
from trader_ml.serving.predictor import current_model
from trader_ml.store import Store
from trader_ml.training.gate import (
    GateDecision,
    decide,
    health_checks,
    health_comparison,
    log_loss_comparison,
    regime_checks,
    regime_comparison,
    served_comparisons,
)
from trader_ml.training.health import HealthTrainResult
from trader_ml.training.labels import health_targets
from trader_ml.training.metrics import format_table
from trader_ml.training.regime import RegimeTrainResult
from trader_ml.training.regime import windows as regime_windows


@dataclass
class Candidate:
    """What the job learned, before it is stored."""

    regime: RegimeTrainResult
    health: HealthTrainResult
    regime_onnx: bytes
    health_onnx: bytes


@dataclass
class Champions:
    """The current models a candidate is judged against, as served, and for each model that is
    not (the baseline serves it, or its artifact cannot be loaded) the reason."""

    regime: RegimeModel | None
    health: HealthModel | None
    versions: dict[str, str | None]  # the version of each champion judged against; None where none was
    notes: dict[str, str]  # kind -> why no trained champion was judged against


def load_champion(store: Store, pointer: dict | None, log: Callable[[str], None]) -> Champions:
    """The models latest.json makes current; a model it leaves to the baseline or that cannot be
    loaded is None, and the candidate is judged against the baseline only, saying so."""
    champions = Champions(None, None, {kind: None for kind in registry.KINDS}, {})
    for kind in registry.KINDS:
        version = registry.model_version(pointer, kind) if pointer else None
        if version is None:
            if pointer is not None:
                champions.notes[kind] = "the rule baseline is the champion (latest.json names no trained model)"
            continue
        try:
            setattr(champions, kind, current_model(store, pointer, kind))
            champions.versions[kind] = version
        except TraderMLError as e:
            champions.notes[kind] = (
                f"the champion {kind} model {version} cannot be evaluated ({e}), so it was judged against the "
                "baseline alone (which is what serves while the champion cannot load)"
            )
            log(f"  {champions.notes[kind]}")
    return champions


@dataclass
class TestAnswers:
    """The candidate's test windows, what happened in them, and what its ONNX files answer:
    computed once, read by both the gate and the report."""

    regime_rows: np.ndarray  # context rows
    regime_labels: np.ndarray
    regime_probs: np.ndarray  # the exported regime model's probabilities
    exposure_prior: dict | None  # the risk budget's fit on its training days (None: an artifact without one)
    health_x: np.ndarray
    health_target: np.ndarray
    health_drawdown: np.ndarray
    health_score: np.ndarray  # the exported health model's probabilities
    day_index: np.ndarray  # test day of each health row, from 0


def test_answers(candidate: Candidate, context: pd.DataFrame, features: pd.DataFrame) -> TestAnswers:
    regime, health = candidate.regime, candidate.health
    rows, index = regime.split.test, health.test_index
    values = context[list(CONTEXT_FEATURES)].to_numpy(dtype=np.float64)
    own = RegimeModel.from_bytes(candidate.regime_onnx)
    x = frame_raw(features)[index]
    day_index = pd.factorize(pd.DatetimeIndex(features["date"].iloc[index]), sort=True)[0]
    target, drawdown = health_targets(features, health.config.horizon)
    return TestAnswers(
        regime_rows=rows,
        regime_labels=regime.labels[rows],
        regime_probs=own.predict_proba(regime_windows(values, rows, own.lookback)).probs,
        exposure_prior=own.metadata.get("exposure_prior"),
        health_x=x,
        health_target=target[index],
        health_drawdown=drawdown[index],
        health_score=HealthModel.from_bytes(candidate.health_onnx).predict_proba(x, day_index).probability,
        day_index=day_index,
    )


def judge(
    window: TestAnswers, context: pd.DataFrame, champion: Champions, tolerance: float, candidate_references: dict
) -> dict[str, GateDecision]:
    """Candidate vs its references vs the champion, each model on the candidate's own test window;
    ``candidate_references``: the health references calibrated on the candidate's training rows."""
    return {
        "regime": judge_regime(window, context, champion, tolerance),
        "health": judge_health(window, champion, candidate_references, tolerance),
    }


def _champion_answers(kind: str, answer: Callable[[], np.ndarray]) -> np.ndarray:
    """The champion's answers on the candidate's test window; a champion that cannot read this
    data stops the run, saying so, for either model."""
    try:
        return answer()
    except (ArtifactError, IndexError, ValueError) as e:
        raise TraderMLError(f"the champion {kind} model cannot read this data: {e}") from None


def judge_regime(window: TestAnswers, context: pd.DataFrame, champion: Champions, tolerance: float) -> GateDecision:
    """The regime gate: macro-F1 against the hindsight labels (the rule baseline, the champion) and
    the served exposure against variance targeting alone."""
    values = context[list(CONTEXT_FEATURES)].to_numpy(dtype=np.float64)
    rows, labels = window.regime_rows, window.regime_labels
    regime_pred = window.regime_probs.argmax(axis=1)
    vs_champion = None
    if (model := champion.regime) is not None:
        probs = _champion_answers(
            "regime", lambda: model.predict_proba(regime_windows(values, rows, model.lookback)).probs
        )
        vs_champion = regime_comparison(labels, regime_pred, probs.argmax(axis=1))
    vs_baseline = regime_comparison(labels, regime_pred, baseline_regimes(values)[0][rows])
    served = None
    if window.exposure_prior is not None:
        spy = values[:, CONTEXT_FEATURES.index("spy_return_1d")]
        served = served_comparisons(spy, window.regime_probs, rows, window.exposure_prior)
    checks = regime_checks(vs_baseline, vs_champion, tolerance, served)
    return decide("regime", checks, len(rows), champion_note=champion.notes.get("regime"))


def judge_health(window: TestAnswers, champion: Champions, references: dict, tolerance: float) -> GateDecision:
    """The health gate: log loss against the base rate and the calibrated references, rank
    correlation against -vol_63d, log loss against the champion as served."""
    days, target, score = window.day_index, window.health_target, window.health_score
    vs_references = {
        name: log_loss_comparison(days, target, score, ref.probability(window.health_x))
        for name, ref in references.items()
    }
    minus_vol = -window.health_x[:, RAW_COLUMNS.index("vol_63d")]
    rank = health_comparison(days, window.health_drawdown, score, minus_vol)
    vs_champion = None
    if (model := champion.health) is not None:
        champion_score = _champion_answers("health", lambda: model.predict_proba(window.health_x, days).probability)
        vs_champion = log_loss_comparison(days, target, score, champion_score)
    checks, headline = health_checks(vs_references, rank, vs_champion, tolerance)
    return decide("health", checks, int(days.max()) + 1, champion_note=champion.notes.get("health"), headline=headline)


def summary_table(decisions: dict[str, GateDecision]) -> str:
    """Each model's headline metric: the candidate, the strongest reference it is held to, the champion."""
    rows = {}
    for kind, d in decisions.items():
        shown, champion = d.vs_reference, d.vs_champion
        rows[f"{kind} {shown.comparison.metric} vs {shown.against}"] = [
            shown.comparison.candidate,
            shown.comparison.other,
            champion.comparison.other if champion else None,
        ]
    return format_table("", ["candidate", "reference", "champion"], rows).lstrip("\n")
