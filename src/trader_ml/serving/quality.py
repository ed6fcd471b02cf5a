"""What a served answer rests on: the suspect days and the inputs outside the training range
that each model's window holds (the answer's ``data_quality`` field, docs/serving.md)."""

from __future__ import annotations

import numpy as np

from trader_ml.baselines import min_baseline_days
from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES
from trader_ml.serving.daily import DayInputs
from trader_ml.store import Store
from trader_ml.suspect_marks import Mark, marks

# The ten asset features look back at most 63 trading days: a bad day older than that has left
# every one of them (the long-memory columns keep a trace, as they keep any day's).
HEALTH_WINDOW_DAYS = 63


def regime_window(model) -> int:
    """How many trading days the serving regime model reads: its lookback, else the rules'."""
    loaded = model.loaded
    return loaded.regime.lookback if loaded is not None and loaded.regime is not None else min_baseline_days()


def _suspect(found: list[Mark], days: tuple[str, ...]) -> list[dict]:
    inside = set(days)
    return [
        {"date": m.day, "accepted": m.accepted is not None, "reasons": [r.text for r in m.reasons]}
        for m in found
        if m.day in inside
    ]


# An input counts as outside training when it lies beyond the training range by more than this
# share of the range's width: a level's slow walk past its old extreme (the yield slope's is 7%
# of the width on the simulator's unchanged market) is not one; a bad print is many widths out.
OUTLIER_MARGIN = 0.25


def widths_beyond(values: np.ndarray, low, high) -> np.ndarray:
    """How far each value lies beyond its training range [low, high], in widths of that range
    (negative inside it, NaN where missing); beyond ``OUTLIER_MARGIN`` is outside training."""
    width = np.maximum(np.asarray(high) - np.asarray(low), 1e-12)
    with np.errstate(invalid="ignore"):
        return np.maximum(low - values, values - high) / width


def _outside(rows: list[dict], columns: tuple[str, ...], ranges: dict) -> list[tuple[int, str, float]]:
    """(row, column, value) of every finite value beyond its training range by the margin."""
    names = [c for c in columns if c in ranges]
    if not rows or not names:
        return []
    try:  # the answer checked these rows already; a row it left out reads as missing here
        matrix = np.array([[_number(r.get(c)) for c in names] for r in rows], dtype=float)
    except AttributeError:
        return []
    low = np.array([ranges[c][0] for c in names])
    high = np.array([ranges[c][1] for c in names])
    with np.errstate(invalid="ignore"):
        rows_at, cols_at = np.nonzero(widths_beyond(matrix, low, high) > OUTLIER_MARGIN)
    return [(int(i), names[j], float(matrix[i, j])) for i, j in zip(rows_at, cols_at, strict=True)]


def _number(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return np.nan
    return np.nan


def data_quality(model, store: Store, inputs: DayInputs) -> dict:
    """Per model: the window's first and last day, the suspect days in it (with the user's
    acceptance) and the inputs outside what the serving model trained on."""
    regime_days = inputs.days[-regime_window(model) :]
    health_days = inputs.days[-HEALTH_WINDOW_DAYS:]
    found = marks(store, min(regime_days[0], health_days[0]), inputs.date) if inputs.days else []
    ranges = model.loaded.ranges if model.loaded is not None else {}
    regime_rows = inputs.context_rows[-len(regime_days) :]
    outside_regime = _outside(regime_rows, CONTEXT_FEATURES, ranges.get("regime") or {})
    outside_health: dict[str, list[str]] = {}
    for i, name, _ in _outside(inputs.feature_rows, ASSET_FEATURES, ranges.get("health") or {}):
        outside_health.setdefault(str(inputs.feature_rows[i].get("symbol")), []).append(name)
    return {
        "regime": {
            "window": [regime_days[0], regime_days[-1]] if regime_days else [],
            "suspect_days": _suspect(found, regime_days),
            "outside_training": [
                {"date": regime_days[i], "column": name, "value": value, "range": list(ranges["regime"][name])}
                for i, name, value in outside_regime
            ],
        },
        "health": {
            "window": [health_days[0], health_days[-1]] if health_days else [],
            "suspect_days": _suspect(found, health_days),
            "outside_training": outside_health,
        },
    }


def warning_line(answer: dict) -> str | None:
    """One line naming what the answer rests on, or None when it rests on nothing doubtful."""
    quality = answer.get("data_quality") or {}
    parts = []
    for kind in ("regime", "health"):
        part = quality.get(kind) or {}
        open_days = [d["date"] for d in part.get("suspect_days", []) if not d["accepted"]]
        outside = part.get("outside_training") or []
        bits = []
        if open_days:
            bits.append(f"suspect day(s) {', '.join(open_days)}")
        if outside:
            if kind == "regime":
                cells = sorted({f"{o['column']} on {o['date']}" for o in outside})
                bits.append(f"inputs outside training: {', '.join(cells[:4])}{' ...' if len(cells) > 4 else ''}")
            else:
                bits.append(f"{len(outside)} symbol(s) with inputs outside training ({', '.join(sorted(outside)[:4])})")
        if bits:
            parts.append(f"{kind}: {'; '.join(bits)}")
    if not parts:
        return None
    return f"warning: the answer for {answer.get('date')} rests on " + " | ".join(parts)
