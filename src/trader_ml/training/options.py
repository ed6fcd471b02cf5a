"""The training settings that need no torch: the loop's ``FitConfig`` and a run's ``TrainOptions``.

Every default of the training commands is written here once; the command line reads its flag
defaults from these dataclasses, so ``trader-ml --help`` shows them without importing torch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from trader_ml.schema import HEALTH_TYPES, REGIME_TYPES

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 100  # a maximum: early stopping usually ends sooner
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    # Epochs without a better validation loss before stopping. An epoch is every training window
    # (thousands of asset-days for health), and the validation loss is noisy: on pre-2022 fits
    # of the sample, 10 epochs of patience ran 10 more epochs for no better weights (regime: best
    # at epoch 14 either way; health: a best within 0.0002 of one 8 epochs earlier).
    patience: int = 5
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    # Intra-op threads while fitting: these networks are small, and on a shared 2-core machine
    # one thread per process beats two (parallelise across processes instead).
    threads: int = 1


@dataclass(frozen=True)
class TrainOptions:
    """A whole ``trader-ml train`` run; the single-model commands and the backtest take the same defaults."""

    store: str = "./store"
    region: str | None = None
    endpoint_url: str | None = None
    # Days of history, counted back from the newest stored day; None reads everything stored.
    # Both models read all of it by default, as every backtest refit does, so that each test
    # window spans more than a few weeks (docs/registry.md): the guide's 365 left the regime
    # model a 27-day test window and the health model a single year of one volatility regime.
    max_days: int | None = None  # the features table (the health model): the guide's --max-days
    regime_max_days: int | None = None  # the context table (the regime model)
    start: dt.date | None = None  # read only days from start to end, and strictly before until
    end: dt.date | None = None
    until: dt.date | None = None
    regime_type: str = REGIME_TYPES[0]
    health_type: str = HEALTH_TYPES[0]
    epochs: int = FitConfig.epochs
    regime_batch_size: int = FitConfig.batch_size
    health_batch_size: int = 64  # asset-days are many and alike: larger batches, same epochs
    regime_label_horizon: int = 10  # trading days the rule labels look ahead (before the labeller smooths them)
    skip_upload: bool = False
    output_dir: str = "/tmp/models"
    force: bool = False
    tolerance: float = 0.02  # how much worse than the champion still passes the gate
    device: str = FitConfig.device
    seed: int = FitConfig.seed
    progress: bool = True
    today: dt.date | None = None
