"""What the health model reads: an asset's features, its longer memory of volatility, and its
log volatility against that day's universe (numpy only: training and serving build it alike).

The health event is relative: landing in the worst fifth of the day's own universe. A volatile
day raises every asset's volatility but not every asset's chance of the event, so the model
also reads each log volatility minus the mean over that day's assets. With the absolute levels
alone a calibrated score would call every asset unhealthy on a stressed day, when four in five
still avoid the worst fifth.

A long-memory column an asset lacks (a young listing, a table with only the guide's ten) is
read as the next shorter volatility it has, so the day-relative columns are always defined;
the raw column itself stays missing (NaN) for the network's mask.
"""

from __future__ import annotations

import numpy as np

from trader_ml.schema import ASSET_FEATURES, LONG_VOL_FEATURES

RAW_COLUMNS: tuple[str, ...] = (*ASSET_FEATURES, *LONG_VOL_FEATURES)
# Each volatility read relative to its day, and the shorter one standing in where it is missing.
RELATIVE_VOLS: tuple[str, ...] = ("vol_21d", "vol_63d", *LONG_VOL_FEATURES)
STAND_IN = {"vol_126d": "vol_63d", "vol_252d": "vol_126d", "vol_ewm_42d": "vol_63d"}
RELATIVE_COLUMNS: tuple[str, ...] = tuple(f"day_relative_log_{name}" for name in RELATIVE_VOLS)
MODEL_INPUTS: tuple[str, ...] = (*RAW_COLUMNS, *RELATIVE_COLUMNS)
MIN_VOL = 1e-4  # a floor under log volatility: a flat price would make it -inf


def raw_matrix(columns: dict[str, np.ndarray], rows: int) -> np.ndarray:
    """(rows, RAW_COLUMNS) from named columns; a long-memory column not given is NaN."""
    out = np.full((rows, len(RAW_COLUMNS)), np.nan)
    for j, name in enumerate(RAW_COLUMNS):
        if name in columns:
            out[:, j] = np.asarray(columns[name], dtype=float)
    return out


def log_vols(raw: np.ndarray) -> np.ndarray:
    """(N, RELATIVE_VOLS) log volatilities of raw rows, stand-ins filled in."""
    index = {name: RAW_COLUMNS.index(name) for name in RELATIVE_VOLS}
    vols: dict[str, np.ndarray] = {}
    for name in RELATIVE_VOLS:  # shorter ones first, so each stand-in is already filled
        value = raw[:, index[name]].astype(float)
        if name in STAND_IN:
            value = np.where(np.isfinite(value), value, vols[STAND_IN[name]])
        vols[name] = value
    return np.log(np.maximum(np.column_stack([vols[n] for n in RELATIVE_VOLS]), MIN_VOL))


def model_inputs(raw: np.ndarray, day: np.ndarray | None = None) -> np.ndarray:
    """(N, MODEL_INPUTS): the raw columns, then each log volatility minus its day's mean over
    the rows of that day. ``day`` labels each row's day (any integers); None: one day."""
    raw = np.asarray(raw, dtype=float)
    logs = log_vols(raw)
    day = np.zeros(len(raw), dtype=np.int64) if day is None else np.asarray(day)
    _, group = np.unique(day, return_inverse=True)
    group = group.reshape(-1)
    count = np.bincount(group, minlength=group.max(initial=-1) + 1)
    relative = np.empty_like(logs)
    for j in range(logs.shape[1]):
        mean = np.bincount(group, logs[:, j], minlength=len(count)) / np.maximum(count, 1)
        relative[:, j] = logs[:, j] - mean[group]
    return np.hstack([raw, relative])


def frame_raw(frame) -> np.ndarray:
    """(rows, RAW_COLUMNS) of a features frame (the ten, any long-memory columns)."""
    return raw_matrix({c: frame[c].to_numpy() for c in RAW_COLUMNS if c in frame.columns}, len(frame))
