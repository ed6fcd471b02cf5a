"""A version's training report, assembled from the candidate, its judged test windows and the live record."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from trader_ml.monitor.record import summary_lines
from trader_ml.pages.live import live_section
from trader_ml.pages.training_report import HealthView, RegimeView, render
from trader_ml.training.gate import GateDecision

if TYPE_CHECKING:
    from trader_ml.release.judge import Candidate, TestAnswers


def report_html(
    manifest: dict,
    candidate: Candidate,
    context: pd.DataFrame,
    window: TestAnswers,
    decisions: dict[str, GateDecision],
    live: dict | None = None,
) -> bytes:
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
        live_section(live, summary_lines(live) if live and "unavailable" not in live else []),
    )
    return page.encode()
