"""Raw closes and series -> the training guide's context rows and per-asset feature rows (pure functions).

Definitions (docs/data.md): trading days are the days SPY has a close; ``N``-day windows count
trading days; returns are ``P_t / P_(t-N) - 1``; volatility is the sample std (ddof=1) of the
last N daily log returns times sqrt(252); drawdown is ``P_t / max(last N closes) - 1``.
The optional long-memory columns: ``vol_126d`` and ``vol_252d`` as above, and ``vol_ewm_42d``,
the root of an exponentially weighted mean of squared daily log returns (half-life 42 days, over
the last 252 returns so a day's value never depends on how much history came before) times
sqrt(252). Nothing is forward-filled: a window that touches a missing close gives NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader_ml.data.sources.base import RawMarket
from trader_ml.schema import (
    ASSET_FEATURES,
    CONTEXT_COLUMNS,
    HYG,
    IEF,
    LONG_VOL_FEATURES,
    SPY,
    TLT,
    TRADING_DAYS_PER_YEAR,
    VIXY,
)

# A yield or tone reading older than this is stale: the column is NaN rather than invented.
AS_OF_TOLERANCE = pd.Timedelta(days=7)
# The longest window (252 returns, vol_252d) needs 253 closes; calendar days to fetch before a
# start date, so a one-day ingest computes the same values as a full one.
LOOKBACK_CALENDAR_DAYS = 400
EWM_HALF_LIFE = 42
EWM_WINDOW = 252


def period_return(prices: pd.DataFrame | pd.Series, days: int):
    return prices / prices.shift(days) - 1.0


def realized_vol(prices: pd.DataFrame | pd.Series, days: int):
    """Annualised std of the last ``days`` log returns, computed window by window.

    pandas' rolling std updates a running sum, so its last digits depend on where the series
    starts; a day's value must not change with how much history was fetched before it.
    """
    log_returns = np.log(prices).diff()
    values = log_returns.to_numpy(dtype=float).reshape(len(log_returns), -1)
    out = np.full(values.shape, np.nan)
    if len(values) >= days:
        for j in range(values.shape[1]):
            windows = np.lib.stride_tricks.sliding_window_view(values[:, j], days)
            out[days - 1 :, j] = windows.std(axis=1, ddof=1)
    out *= np.sqrt(TRADING_DAYS_PER_YEAR)
    if isinstance(log_returns, pd.Series):
        return pd.Series(out[:, 0], index=log_returns.index)
    return pd.DataFrame(out, index=log_returns.index, columns=log_returns.columns)


def ewm_vol(prices: pd.DataFrame, half_life: int = EWM_HALF_LIFE, window: int = EWM_WINDOW) -> pd.DataFrame:
    """Annualised root of the exponentially weighted mean of the last ``window`` squared daily
    log returns (today's weight 1, halving every ``half_life`` days), window by window."""
    log_returns = np.log(prices).diff()
    values = log_returns.to_numpy(dtype=float).reshape(len(log_returns), -1)
    weights = 0.5 ** (np.arange(window)[::-1] / half_life)  # oldest first, as the windows are
    weights /= weights.sum()
    out = np.full(values.shape, np.nan)
    if len(values) >= window:
        for j in range(values.shape[1]):
            windows = np.lib.stride_tricks.sliding_window_view(values[:, j] ** 2, window)
            out[window - 1 :, j] = windows @ weights
    return pd.DataFrame(np.sqrt(out * TRADING_DAYS_PER_YEAR), index=log_returns.index, columns=log_returns.columns)


def drawdown(prices: pd.DataFrame | pd.Series, days: int):
    return prices / prices.rolling(days).max() - 1.0


def trading_day_closes(raw: RawMarket) -> pd.DataFrame:
    """Closes on SPY's trading days only."""
    if SPY not in raw.closes:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="date"))
    days = raw.closes.index[raw.closes[SPY].notna()]
    return raw.closes.loc[days]


def _as_of(series: pd.Series | None, days: pd.DatetimeIndex) -> np.ndarray:
    """Last value on or before each day (within AS_OF_TOLERANCE), else NaN."""
    if series is None or series.dropna().empty:
        return np.full(len(days), np.nan)
    known = series.dropna().sort_index()
    left = pd.DataFrame({"date": days})
    right = pd.DataFrame({"date": pd.DatetimeIndex(known.index).astype(days.dtype), "value": known.to_numpy()})
    joined = pd.merge_asof(left, right, on="date", direction="backward", tolerance=AS_OF_TOLERANCE)
    return joined["value"].to_numpy(dtype=float)


def _change(closes: pd.DataFrame, num: str, den: str | None, days: int) -> np.ndarray:
    """N-day relative change of a ticker, or of the ratio num/den; NaN when a ticker is absent."""
    if num not in closes or (den is not None and den not in closes):
        return np.full(len(closes), np.nan)
    series = closes[num] if den is None else closes[num] / closes[den]
    return period_return(series, days).to_numpy(dtype=float)


def context_rows(raw: RawMarket) -> pd.DataFrame:
    """One row per trading day with a full SPY history window; unavailable columns are NaN."""
    closes = trading_day_closes(raw)
    days = closes.index
    spy = closes[SPY] if SPY in closes else pd.Series(dtype=float)
    frame = pd.DataFrame(
        {
            "date": days,
            "spy_return_1d": period_return(spy, 1).to_numpy(),
            "spy_return_21d": period_return(spy, 21).to_numpy(),
            "spy_vol_21d": realized_vol(spy, 21).to_numpy(),
            "yield_slope": _as_of(raw.yield_slope, days),
            "credit_spread_proxy": _change(closes, HYG, IEF, 21),
            "vixy_return_21d": _change(closes, VIXY, None, 21),
            "risk_off_proxy": _change(closes, TLT, SPY, 21),
            "gdelt_avg_tone": _as_of(raw.news_tone, days),
        },
        columns=list(CONTEXT_COLUMNS),
    )
    complete = frame[["spy_return_1d", "spy_return_21d", "spy_vol_21d"]].notna().all(axis=1)
    return frame[complete.to_numpy()].reset_index(drop=True)


def feature_rows(raw: RawMarket, since: pd.Timestamp | None = None) -> tuple[pd.DataFrame, int]:
    """Per-(day, symbol) rows from ``since`` on, sorted by date then symbol, and how many
    rows were skipped.

    A row is kept only when all ten features are finite: too little history or a missing
    close inside a window skips it (counted), it never yields a NaN feature. The long-memory
    columns are NaN where their longer windows are not yet full.
    """
    closes = trading_day_closes(raw)
    symbols = sorted(s for s in raw.symbols if s in closes)
    prices = closes[symbols]
    spy = closes[SPY]
    spy_return = {n: period_return(spy, n).to_numpy()[:, None] for n in (21, 63)}
    returns = {n: period_return(prices, n).to_numpy() for n in (1, 5, 21, 63)}
    columns = {
        "return_1d": returns[1],
        "return_5d": returns[5],
        "return_21d": returns[21],
        "return_63d": returns[63],
        "vol_21d": realized_vol(prices, 21).to_numpy(),
        "vol_63d": realized_vol(prices, 63).to_numpy(),
        "drawdown_21d": drawdown(prices, 21).to_numpy(),
        "drawdown_63d": drawdown(prices, 63).to_numpy(),
        "rel_strength_21d": returns[21] - spy_return[21],
        "rel_strength_63d": returns[63] - spy_return[63],
    }
    columns |= {
        "vol_126d": realized_vol(prices, 126).to_numpy(),
        "vol_252d": realized_vol(prices, 252).to_numpy(),
        "vol_ewm_42d": ewm_vol(prices).to_numpy(),
    }
    names = (*ASSET_FEATURES, *LONG_VOL_FEATURES)
    values = np.stack([columns[c] for c in names], axis=-1)  # (days, symbols, features)
    n_days, n_symbols = values.shape[:2]
    values = values.reshape(n_days * n_symbols, len(names))
    keep = np.isfinite(values[:, : len(ASSET_FEATURES)]).all(axis=1)
    in_range = np.repeat(closes.index >= since, n_symbols) if since is not None else np.ones_like(keep)
    has_price = prices.notna().to_numpy().reshape(-1)
    skipped = int((has_price & in_range & ~keep).sum())
    keep &= in_range
    frame = pd.DataFrame(values[keep], columns=list(names))
    frame.insert(0, "symbol", np.tile(np.asarray(symbols, dtype=object), n_days)[keep])
    frame.insert(0, "date", np.repeat(closes.index.to_numpy(), n_symbols)[keep])
    frame["symbol"] = frame["symbol"].astype("string")
    return frame, skipped
