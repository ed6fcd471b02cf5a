"""Chronological train / validation / test splits with a purge gap, and class weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trader_ml.errors import InsufficientHistory


@dataclass(frozen=True)
class Split:
    """Row indices (ascending) of the samples in each part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def chronological_split(rows: np.ndarray, purge: int, val_fraction: float, test_fraction: float) -> Split:
    """Oldest samples train, the next validate, the newest test.

    A sample of row t carries a target computed from rows up to ``t + purge``; samples whose
    target reaches into the next part are dropped, so no training target is computed from a
    validation or test day (and no validation target from a test day).
    """
    rows = np.asarray(rows)
    n_test = max(int(round(len(rows) * test_fraction)), 1)
    n_val = max(int(round(len(rows) * val_fraction)), 1)
    train, val, test = np.split(rows, [len(rows) - n_val - n_test, len(rows) - n_test])
    train = train[train + purge < val[0]]
    val = val[val + purge < test[0]]
    if not (len(train) and len(val) and len(test)):
        raise InsufficientHistory(
            f"too short a history: {len(rows)} samples leave an empty train, validation or test part "
            f"after the {purge}-day purge gaps; use a longer window"
        )
    return Split(train, val, test)


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights, averaging 1 over the training samples; 0 for absent classes."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights
