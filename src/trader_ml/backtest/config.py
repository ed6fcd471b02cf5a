"""What a backtest runs: its typed configuration and the refit calendar it implies."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from trader_ml.errors import TraderMLError
from trader_ml.exposure import COST_BP
from trader_ml.schema import HEALTH_TYPES, KINDS, REGIME_TYPES
from trader_ml.training.options import TrainOptions

MODEL_TYPES = {"regime": REGIME_TYPES, "health": HEALTH_TYPES}  # the first of each is the default
PORTFOLIO = "portfolio"  # both models together: the regime and health refits of the same calendar
MODELS = (*KINDS, PORTFOLIO)
REFITS = {"yearly": "YS", "quarterly": "QS", "monthly": "MS"}

if TYPE_CHECKING:  # pandas is imported where the calendar is built: the command line reads the defaults
    import pandas as pd
DEFAULT_HISTORY_YEARS = 5  # without --start, the first refit leaves this much history to train on


@dataclass(frozen=True)
class BacktestConfig:
    model: str = KINDS[0]
    model_type: str | None = None  # None: gru for regime, autoencoder for health
    start: dt.date | None = None  # first test day (default: 5 years into the data)
    end: dt.date | None = None  # last test day (default: the newest day)
    refit: str = "yearly"
    window_days: int | None = None  # None: expanding window; N: the last N calendar days only
    epochs: int = TrainOptions.epochs
    seeds: int = 1
    cost_bp: float = COST_BP
    workers: int | None = None  # None: one per core
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise TraderMLError(f"--model must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.model == PORTFOLIO and self.model_type is not None:
            raise TraderMLError("--model-type does not go with --model portfolio: it refits the default of each model")
        if self.model_type is not None and self.model_type not in MODEL_TYPES[self.model]:
            raise TraderMLError(
                f"--model-type {self.model_type} is not a {self.model} model: use {' or '.join(MODEL_TYPES[self.model])}"
            )
        if self.refit not in REFITS:
            raise TraderMLError(f"--refit must be one of {', '.join(REFITS)}, not {self.refit!r}")
        if self.start and self.end and self.start > self.end:
            raise TraderMLError(f"--start {self.start} is after --end {self.end}")
        if self.cost_bp < 0 or self.epochs < 1 or self.seeds < 1:
            raise TraderMLError("--cost-bp must be >= 0, --epochs and --seeds >= 1")

    @property
    def resolved_type(self) -> str:
        if self.model == PORTFOLIO:
            return f"{REGIME_TYPES[0]}+{HEALTH_TYPES[0]}"
        return self.model_type or MODEL_TYPES[self.model][0]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["model_type"] = self.resolved_type
        for key in ("start", "end"):
            out[key] = out[key] and out[key].isoformat()
        return out


@dataclass(frozen=True)
class Period:
    """The days one refit answers for: positions ``first`` .. ``stop - 1`` of the data's days."""

    refit_date: pd.Timestamp
    first: int
    stop: int
    train_first: int  # first training row (0 on an expanding window)


def first_start(days: pd.DatetimeIndex, refit: str) -> dt.date:
    """The default first test day: the first refit boundary five years into the data."""
    import pandas as pd

    anchor = days[0] + pd.DateOffset(years=DEFAULT_HISTORY_YEARS)
    boundary = pd.date_range(anchor, periods=1, freq=REFITS[refit])[0]
    return boundary.date()


def periods(days: pd.DatetimeIndex, config: BacktestConfig, where: str) -> list[Period]:
    """Refit at ``start`` and at each calendar boundary after it; each period holds the data's
    days from its refit date up to the next one (and up to ``end``)."""
    import numpy as np
    import pandas as pd

    start = config.start or first_start(days, config.refit)
    end = config.end or days[-1].date()
    span = f"the data spans {days[0].date()} .. {days[-1].date()}"
    if config.end is None and start > days[-1].date():
        raise TraderMLError(f"{where}: no trading days from {start} on ({span})")
    if start > end:
        raise TraderMLError(f"--start {start} is after --end {end}")
    in_window = (days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))
    if not in_window.any():
        raise TraderMLError(f"{where}: no trading days between {start} and {end} ({span})")
    boundaries = [
        pd.Timestamp(start),
        *pd.date_range(pd.Timestamp(start) + pd.Timedelta(days=1), end, freq=REFITS[config.refit]),
    ]
    out = []
    last = int(np.flatnonzero(in_window)[-1]) + 1
    for i, refit_date in enumerate(boundaries):
        first = int(days.searchsorted(refit_date))
        stop = int(days.searchsorted(boundaries[i + 1])) if i + 1 < len(boundaries) else last
        stop = min(stop, last)
        if stop <= first:
            continue
        train_first = 0
        if config.window_days is not None:
            train_first = int(days.searchsorted(refit_date - pd.Timedelta(days=config.window_days)))
        out.append(Period(refit_date, first, stop, train_first))
    return out


def check_history(periods_: list[Period], days: pd.DatetimeIndex, need: int, kind: str) -> None:
    """Every refit must have at least ``need`` training days before it."""
    for p in periods_:
        have = p.first - p.train_first
        if have < need:
            raise TraderMLError(
                f"the refit of {p.refit_date.date()} has {have} trading days of {kind} data before it "
                f"(from {days[p.train_first].date() if have else '-'}); the {kind} model needs at least {need}: "
                "choose a later --start or a longer --window-days"
            )
