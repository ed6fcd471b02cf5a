"""A training run's report: one self-contained HTML page (images inline, nothing fetched)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from markupsafe import Markup

from trader_ml.pages.kit import COLORS, REGIME_CMAP, figure_png, html_figures, html_table, plt, render_template
from trader_ml.schema import REGIMES
from trader_ml.training.health_references import REFERENCES
from trader_ml.training.metrics import calibration_bins


@dataclass
class RegimeView:
    """The regime model on its test window."""

    dates: pd.DatetimeIndex
    spy_return_1d: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    history: list[dict]


@dataclass
class HealthView:
    """The health model on its test rows."""

    probability: np.ndarray
    target: np.ndarray
    drawdown: np.ndarray
    history: list[dict]


def regime_timeline(view: RegimeView) -> str:
    """SPY over the test window, shaded by predicted regime (top strip) and label (bottom)."""
    fig, ax = plt.subplots(figsize=(10, 3.6))
    spy = np.cumprod(1.0 + view.spy_return_1d)
    x = np.arange(len(spy))
    ax.plot(x, spy, color="black", linewidth=1.2, label="SPY (start = 1)")
    low, high = spy.min(), spy.max()
    pad = (high - low) * 0.25 + 1e-9
    for regimes, (bottom, top) in ((view.probs.argmax(axis=1), (high, high + pad)), (view.labels, (low - pad, low))):
        ax.imshow(
            np.asarray(regimes, dtype=int)[None, :],
            aspect="auto",
            cmap=REGIME_CMAP,
            vmin=0,
            vmax=len(REGIMES) - 1,
            extent=(-0.5, len(x) - 0.5, bottom, top),
            interpolation="nearest",
        )
    ax.set_xlim(-0.5, len(x) - 0.5)
    ax.set_ylim(low - pad, high + pad)
    ticks = np.linspace(0, len(x) - 1, min(6, len(x))).astype(int)
    ax.set_xticks(ticks, [view.dates[i].strftime("%Y-%m-%d") for i in ticks])
    ax.set_title("Test window: predicted regime (top band) and label (bottom band)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS]
    ax.legend(handles, REGIMES, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return figure_png(fig)


def confusion(view: RegimeView) -> str:
    k = len(REGIMES)
    matrix = np.bincount(view.labels * k + view.probs.argmax(axis=1), minlength=k * k).reshape(k, k)
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", color="black" if n < matrix.max() / 2 else "white")
    ax.set_xticks(range(k), REGIMES, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(k), REGIMES, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")
    ax.set_title("Confusion matrix (test window)")
    return figure_png(fig)


def _reliability(ax, confidence: np.ndarray, outcome: np.ndarray, label: str) -> None:
    table = calibration_bins(confidence, outcome)
    ax.plot(table[:, 0], table[:, 1], marker="o", label=label)


def calibration(regime: RegimeView, health: HealthView) -> str:
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    _reliability(
        ax,
        regime.probs.max(axis=1),
        (regime.probs.argmax(axis=1) == regime.labels).astype(float),
        "regime: confidence vs accuracy",
    )
    _reliability(ax, health.probability, health.target, "health: score vs share not in worst fifth")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("Calibration (test window)")
    ax.legend(fontsize=8)
    return figure_png(fig)


def loss_curves(regime: RegimeView, health: HealthView) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, (name, history) in zip(axes, (("regime", regime.history), ("health", health.history)), strict=True):
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], label="training")
        ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
        best = int(np.argmin([h["val_loss"] for h in history]))
        ax.axvline(epochs[best], color="grey", linestyle=":", label=f"best epoch {epochs[best]}")
        ax.set_title(f"{name} model loss")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    return figure_png(fig)


def health_scores(view: HealthView) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].hist(view.probability, bins=30, color="#1565c0")
    axes[0].set_title("health_score distribution (test rows)")
    deciles = pd.qcut(view.probability, 10, labels=False, duplicates="drop")
    means = pd.Series(view.drawdown).groupby(deciles).mean()
    axes[1].bar(means.index, means.to_numpy(), color="#c62828")
    axes[1].set_title("mean forward 21-day drawdown by score decile")
    axes[1].set_xlabel("score decile (0 = least healthy)")
    return figure_png(fig)


GLOSSARY = Markup("""<dl>
<dt>f1_macro</dt><dd>the F1 score of each regime, averaged with equal weight over the regimes present:
1 is every day labelled right, and a model that always says one regime scores low however common it is.</dd>
<dt>ece (expected calibration error)</dt><dd>how far the stated probabilities are from how often they come true:
days are grouped by the model's confidence in its top regime, and the gap between that confidence and the
share of those days it got right is averaged (weighted by days). 0 is perfectly calibrated.</dd>
<dt>switches_per_year</dt><dd>how often the answer changes from one day to the next, per 252 trading days.</dd>
<dt>test_health_correlation</dt><dd>the mean over test days of the rank correlation between the health score and
the next 21 days' drawdown (higher: healthier assets lost less).</dd>
<dt>brier</dt><dd>the mean squared gap between the health score read as a probability and what happened
(1 when the asset stayed out of the worst fifth of its universe, else 0): 0 is perfect, and always saying 0.8
scores 0.16 when the event's rate is 0.8.</dd>
<dt>auc</dt><dd>the chance that a random asset that avoided the worst fifth scores higher than one that did not.</dd>
</dl>""")


def metric_tables(regime_metrics: dict, health_metrics: dict) -> tuple[list, dict, list, dict]:
    """(columns, rows) of the regime table and of the health table: every row the metrics hold."""
    regime_cols = [c for c in ("model", "baseline", "model_vs_truth", "baseline_vs_truth") if c in regime_metrics]
    regime_rows = {
        k: [regime_metrics[c].get(k) for c in regime_cols]
        for k in ("accuracy", "f1_macro", "ece", "switches_per_year", "days")
    }
    health_cols = [c for c in ("model", *REFERENCES, "baseline", "-vol_63d", "drawdown_63d") if c in health_metrics]
    health_keys = [
        k
        for k in ("log_loss", "brier", "test_health_correlation", "auc", "test_recon_mse", "truth_correlation", "rows")
        if any(k in health_metrics[c] for c in health_cols)
    ]
    health_rows = {k: [health_metrics[c].get(k) for c in health_cols] for k in health_keys}
    return regime_cols, regime_rows, health_cols, health_rows


def render(
    manifest: dict,
    regime_metrics: dict,
    health_metrics: dict,
    decisions: dict,
    regime: RegimeView,
    health: HealthView,
    live_html: str = "",
) -> str:
    """The page: headline, gate, metric tables against baselines and champion, five figures."""
    gate = manifest["gate"]
    champions = gate.get("champion_versions") or {}
    champion = ", ".join(f"{k} {v}" for k, v in champions.items() if v) or None
    regime_cols, regime_rows, health_cols, health_rows = metric_tables(regime_metrics, health_metrics)
    gate_rows = {
        f"{kind}: {c['metric']} vs {c['against']}": [
            c["candidate"],
            c["other"],
            c["difference"],
            f"[{c['low']:+.4f}, {c['high']:+.4f}]",
            f"{c['rule']}" + (f" (margin {c['margin']:g})" if c["margin"] else ""),
            "passes" if c["passed"] else "fails",
        ]
        for kind, d in decisions.items()
        for c in d["checks"]
    }
    figures = [
        ("SPY and regimes", regime_timeline(regime)),
        ("Confusion matrix", confusion(regime)),
        ("Calibration", calibration(regime, health)),
        ("Loss curves", loss_curves(regime, health)),
        ("Health scores", health_scores(health)),
    ]
    passed = gate.get("gate_passed", {})
    tables = {
        "gate": html_table(
            "Gate: every check, against the references and the champion " + (champion or "(none)"),
            ["candidate", "other", "difference", "90% interval", "rule", "check"],
            gate_rows,
        ),
        "regime": html_table("Regime model on its test window", regime_cols, regime_rows),
        "health": html_table("Health model on its test window", health_cols, health_rows),
    }
    return render_template(
        "training_report.html",
        manifest=manifest,
        window=manifest["data_window"],
        gate=gate,
        verdict="gate: " + ", ".join(f"{k} {'passes' if ok else 'fails'}" for k, ok in passed.items()),
        decisions=decisions,
        tables=tables,
        glossary=GLOSSARY,
        images=html_figures(figures),
        live_html=Markup(live_html),  # the monitor page's own escaped markup
    )
