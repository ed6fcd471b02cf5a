"""Input drift: each input column's distribution on the training window, and how far recent
days have moved from it.

At training the manifest records, per column, the deciles of its values and its range, its
missing share, and how far windows of the training days themselves stray from the whole (the
largest population stability index of any window of 20, 40, 63 or 126 days): inputs are
autocorrelated, so a month of one volatility regime differs from the whole window without
anything having changed. The bins are the ten deciles plus one below the training minimum and
one above its maximum, which no training window ever fills: tripled volatility lands there,
where deciles alone would call it "the top tenth". A recent window drifts when over a quarter
of its values lie outside the training range, or when its PSI is above both 0.25 (the usual
"significant shift") and twice the largest the training window's own windows of that length
showed: the training window holds few independent windows of an autocorrelated input, so only
a shift well beyond what training already contained counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.serving.quality import OUTLIER_MARGIN, widths_beyond  # the answers' own rule: one for both

WINDOW_LENGTHS = (20, 40, 63, 126)  # trading days
PSI_FLOOR = 0.25  # the conventional line for a significant shift
NULL_MARGIN = 2.0  # how far past the training window's own largest a recent window must go
EPSILON = 1e-4  # proportion floor inside the logarithm: an empty bin is rare, not impossible
MISSING_LINE = 0.5  # a column counts as present when under half its values are missing
OUTSIDE_LINE = 0.25  # a quarter of recent values beyond anything the training window held


def _bin_of(values: np.ndarray, edges: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """Bin of each value: 0 below the training minimum, then the deciles, last above the maximum."""
    index = np.searchsorted(edges, values, side="right") + 1
    index[values < span[0]] = 0
    index[values > span[1]] = len(edges) + 2
    return index


def _bins(values: np.ndarray, edges: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """Share of the finite ``values`` in each of the len(edges) + 3 bins."""
    finite = values[np.isfinite(values)]
    counts = np.bincount(_bin_of(finite, edges, span), minlength=len(edges) + 3)
    return counts / max(len(finite), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> np.ndarray | float:
    """Population stability index of bin shares (the last axis holds the bins)."""
    e, a = np.maximum(expected, EPSILON), np.maximum(actual, EPSILON)
    value = np.sum((a - e) * np.log(a / e), axis=-1)
    return float(value) if np.ndim(value) == 0 else value


def column_profile(values: np.ndarray, day_of_row: np.ndarray) -> dict:
    """One column on the training window: deciles, missing share, and per window length the
    largest PSI of a window of the training days against the whole."""
    finite = np.isfinite(values)
    missing = float(1 - finite.mean()) if len(values) else 1.0
    if missing > MISSING_LINE or len(np.unique(values[finite])) < 2:
        return {"missing_share": missing, "edges": None, "range": None, "shares": None, "null_psi": {}}
    edges = np.unique(np.quantile(values[finite], np.linspace(0.1, 0.9, 9)))
    span = (float(values[finite].min()), float(values[finite].max()))
    shares = _bins(values, edges, span)
    # Counts per day and bin, summed over every window (one start a day) through a cumulative sum.
    days, day_index = np.unique(day_of_row[finite], return_inverse=True)
    counts = np.zeros((len(days), len(edges) + 3))
    np.add.at(counts, (day_index, _bin_of(values[finite], edges, span)), 1.0)
    cumulative = np.vstack([np.zeros(len(edges) + 3), np.cumsum(counts, axis=0)])
    null = {}
    for length in WINDOW_LENGTHS:
        if len(days) < 2 * length:
            continue
        window = cumulative[length:] - cumulative[:-length]
        null[str(length)] = float(np.max(psi(shares, window / window.sum(axis=1, keepdims=True))))
    return {
        "missing_share": missing,
        "edges": edges.tolist(),
        "range": list(span),
        "shares": shares.tolist(),
        "null_psi": null,
    }


def input_profile(frame: pd.DataFrame, columns) -> dict:
    """``column_profile`` of each of ``columns`` of a table with a ``date`` column."""
    day = pd.DatetimeIndex(frame["date"]).to_numpy()
    return {c: column_profile(frame[c].to_numpy(dtype=float), day) for c in columns}


def threshold(profile: dict, days: int) -> tuple[float, int] | None:
    """(PSI threshold, window length it was measured on) for a recent window of ``days`` days;
    None when the training window measured no window that short."""
    lengths = [int(n) for n in profile["null_psi"] if int(n) <= days]
    if not lengths:
        return None
    length = max(lengths)
    return max(PSI_FLOOR, NULL_MARGIN * profile["null_psi"][str(length)]), length


def readable(profile: object) -> bool:
    """Whether a profile read from a manifest has the shape ``column_profile`` writes."""
    if not isinstance(profile, dict) or not isinstance(profile.get("missing_share"), (int, float)):
        return False
    if profile.get("edges") is None:
        return True
    edges, span, shares, null = (profile.get(k) for k in ("edges", "range", "shares", "null_psi"))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in [*(edges or []), *(span or [])])
    return (
        isinstance(edges, list)
        and isinstance(span, list)
        and len(span) == 2
        and numbers
        and isinstance(shares, list)
        and len(shares) == len(edges) + 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in shares)
        and isinstance(null, dict)
        and all(k.isdigit() and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in null.items())
    )


def compare(profiles: dict, recent: pd.DataFrame) -> dict:
    """Each column of ``recent`` (the days to judge) against its training profile: PSI, the
    threshold, whether it drifted; columns that went missing or appeared."""
    days = int(pd.DatetimeIndex(recent["date"]).nunique()) if len(recent) else 0
    columns, flags, missing, appeared = {}, [], [], []
    for name, profile in profiles.items():
        if not readable(profile):
            columns[name] = {"note": "its training profile is unreadable or from an older trader-ml"}
            continue
        values = recent[name].to_numpy(dtype=float) if name in recent else np.array([])
        share = float(np.mean(~np.isfinite(values))) if len(values) else 1.0
        row: dict = {"missing_share": share, "training_missing_share": profile["missing_share"]}
        trained_on = profile["edges"] is not None
        if trained_on and share > MISSING_LINE:
            missing.append(name)
        elif not trained_on and profile["missing_share"] > MISSING_LINE and share <= MISSING_LINE:
            appeared.append(name)  # the model never saw it: serving reads it as missing
        if trained_on and share <= MISSING_LINE:
            limit = threshold(profile, days)
            span = tuple(profile["range"])
            value = float(psi(np.asarray(profile["shares"]), _bins(values, np.asarray(profile["edges"]), span)))
            finite = values[np.isfinite(values)]
            outside = float(np.mean((finite < span[0]) | (finite > span[1]))) if len(finite) else 0.0
            row.update(psi=value, threshold=None if limit is None else limit[0], outside_training_range=outside)
            row["drift"] = bool(limit is not None and (value > limit[0] or outside > OUTSIDE_LINE))
            if row["drift"]:
                flags.append(name)
        columns[name] = row
    return {"days": days, "columns": columns, "flags": flags, "went_missing": missing, "appeared": appeared}


def outlier_days(profiles: dict, recent: pd.DataFrame, limit: int = 5) -> list[dict]:
    """The days of ``recent`` holding a value beyond its training range by more than
    ``OUTLIER_MARGIN`` of the range's width: one bad day that a column-level shift over 63 days
    cannot see (a sixty-third of the values) is named here, with its values (at most ``limit``
    per day, the farthest first; rows with a ``symbol`` name it)."""
    if recent.empty:
        return []
    found: dict[str, list[tuple[float, dict]]] = {}
    dates = pd.DatetimeIndex(recent["date"]).strftime("%Y-%m-%d").to_numpy()
    symbols = recent["symbol"].astype(str).to_numpy() if "symbol" in recent else None
    for name, profile in profiles.items():
        if not readable(profile) or profile["edges"] is None or name not in recent:
            continue
        low, high = profile["range"]
        values = recent[name].to_numpy(dtype=float)
        excess = widths_beyond(values, low, high)
        with np.errstate(invalid="ignore"):
            beyond = np.flatnonzero(excess > OUTLIER_MARGIN)
        for i in beyond:
            item = {"column": name, "value": float(values[i]), "range": [low, high]}
            if symbols is not None:
                item["symbol"] = symbols[i]
            found.setdefault(dates[i], []).append((float(excess[i]), item))
    return [
        {
            "date": day,
            "count": len(items),
            "widths": round(max(excess for excess, _ in items), 2),  # the farthest, in range widths past it
            "values": [item for _, item in sorted(items, key=lambda pair: -pair[0])[:limit]],
        }
        for day, items in sorted(found.items())
    ]
