"""Honest measures of a regime classifier on a test window, and the tables that print them."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from trader_ml.schema import REGIMES, TRADING_DAYS_PER_YEAR
from trader_ml.stats import brier_rows, log_loss_rows


def calibration_bins(confidence: np.ndarray, outcome: np.ndarray, bins: int = 10) -> np.ndarray:
    """Equal-width confidence bins that hold any rows: (mean confidence, observed frequency,
    share of rows) per bin, shape (non-empty bins, 3)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    filled = count > 0
    mean_confidence = np.bincount(which, confidence, bins)[filled] / count[filled]
    frequency = np.bincount(which, outcome.astype(float), bins)[filled] / count[filled]
    return np.column_stack([mean_confidence, frequency, count[filled] / len(confidence)])


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 10) -> float:
    """Gap between confidence and accuracy, averaged over equal-width confidence bins."""
    table = calibration_bins(probs.max(axis=1), probs.argmax(axis=1) == y_true, bins)
    return float((table[:, 2] * np.abs(table[:, 1] - table[:, 0])).sum())


def switches_per_year(regimes: np.ndarray) -> float:
    """How often the answer changes from one day to the next, per 252 trading days."""
    if len(regimes) < 2:
        return 0.0
    return float((np.diff(regimes) != 0).sum() / (len(regimes) / TRADING_DAYS_PER_YEAR))


def regime_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, macro-F1 (over the regimes that occur in ``y_true``), per-regime F1, confusion
    matrix (rows: truth, columns: prediction), calibration error and switches per year."""
    y_pred = probs.argmax(axis=1)
    present = sorted(set(int(v) for v in y_true))
    per_class = f1_score(y_true, y_pred, labels=range(len(REGIMES)), average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class_f1": {name: (float(per_class[i]) if i in present else None) for i, name in enumerate(REGIMES)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=range(len(REGIMES))).tolist(),
        "ece": expected_calibration_error(probs, y_true),
        "switches_per_year": switches_per_year(y_pred),
        "days": int(len(y_true)),
    }


def format_table(title: str, columns: list[str], rows: dict[str, list]) -> str:
    """A plain text table: one row per metric, one column per model."""

    def cell(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    width = max(len(k) for k in rows) if rows else 10
    # 12 characters a column, more where a header or a cell needs them
    widths = [max(12, len(c), *(len(cell(v[i])) for v in rows.values() if i < len(v))) for i, c in enumerate(columns)]
    lines = [title, f"{'':<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))]
    for name, values in rows.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell(v):>{w}}" for v, w in zip(values, widths, strict=False)))
    return "\n".join(lines)


def regime_table(results: dict[str, dict]) -> str:
    """Model and baseline side by side: {column name: regime_metrics(...)}."""
    columns = list(results)
    rows: dict[str, list] = {}
    for key in ("accuracy", "f1_macro", "ece", "switches_per_year", "days"):
        rows[key] = [results[c].get(key) for c in columns]
    for name in REGIMES:
        rows[f"f1 {name}"] = [results[c]["per_class_f1"][name] for c in columns]
    return format_table("", columns, rows).lstrip("\n")


def macro_f1_rows(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 of each row of (R, n) label and prediction matrices, over the classes present in
    that row's ``y_true``: what ``f1_score(labels=present, average="macro", zero_division=0)``
    gives one row, for a thousand bootstrap resamples in one bincount instead of a thousand calls."""
    rows = y_true.shape[0]
    cells = n_classes * n_classes
    codes = (np.arange(rows)[:, None] * cells + y_true * n_classes + y_pred).ravel()
    matrix = np.bincount(codes, minlength=rows * cells).reshape(rows, n_classes, n_classes)
    true_count, pred_count = matrix.sum(axis=2), matrix.sum(axis=1)
    tp = np.diagonal(matrix, axis1=1, axis2=2)
    f1 = 2 * tp / np.maximum(true_count + pred_count, 1)
    present = true_count > 0
    return (f1 * present).sum(axis=1) / present.sum(axis=1)


def daily_rank_correlations(dates: np.ndarray, score: np.ndarray, outcome: np.ndarray, min_names: int = 5):
    """Spearman correlation of ``score`` with ``outcome`` across assets, one value per date
    (a pandas Series indexed by date, sorted), for the dates with at least ``min_names`` assets
    and some spread in both; ties share their average rank (many forward drawdowns are 0)."""
    import pandas as pd

    frame = pd.DataFrame({"date": dates, "score": score, "outcome": outcome}).dropna()
    ranks = frame.groupby("date")[["score", "outcome"]].rank()
    ranks["date"] = frame["date"].to_numpy()
    grouped = ranks.groupby("date")
    n = grouped["score"].transform("size").to_numpy()
    s = ranks["score"] - grouped["score"].transform("mean")
    o = ranks["outcome"] - grouped["outcome"].transform("mean")
    stats = pd.DataFrame({"date": ranks["date"], "so": s * o, "ss": s * s, "oo": o * o})[n >= min_names]
    sums = stats.groupby("date", sort=True)[["so", "ss", "oo"]].sum()
    sums = sums[(sums["ss"] > 0) & (sums["oo"] > 0)]
    return sums["so"] / np.sqrt(sums["ss"] * sums["oo"])


def per_date_rank_correlation(dates: np.ndarray, score: np.ndarray, outcome: np.ndarray, min_names: int = 5) -> float:
    """The mean over dates of ``daily_rank_correlations`` (NaN when no date qualifies)."""
    daily = daily_rank_correlations(dates, score, outcome, min_names)
    return float(daily.mean()) if len(daily) else float("nan")


def health_metrics(
    dates: np.ndarray,
    score: np.ndarray,
    target: np.ndarray,
    drawdown: np.ndarray,
    probability: bool = True,
    truth: np.ndarray | None = None,
) -> dict:
    """The training guide's correlation with the forward drawdown, and AUC, log loss and Brier of
    the event; the last two only for scores that claim to be probabilities. ``truth``: hidden
    health state (higher healthier)."""
    from sklearn.metrics import roc_auc_score

    out = {
        "test_health_correlation": per_date_rank_correlation(dates, score, drawdown),
        "auc": float(roc_auc_score(target, score)) if len(set(target.tolist())) == 2 else None,
        "log_loss": float(np.mean(log_loss_rows(score, target))) if probability else None,
        "brier": float(np.mean(brier_rows(score, target))) if probability else None,
        "rows": int(len(score)),
    }
    if truth is not None:
        out["truth_correlation"] = per_date_rank_correlation(dates, score, truth)
    return out


def health_table(results: dict[str, dict]) -> str:
    columns = list(results)
    keys = ["log_loss", "brier", "test_health_correlation", "auc", "test_recon_mse", "truth_correlation", "rows"]
    rows = {k: [results[c].get(k) for c in columns] for k in keys if any(k in results[c] for c in columns)}
    return format_table("", columns, rows).lstrip("\n")
