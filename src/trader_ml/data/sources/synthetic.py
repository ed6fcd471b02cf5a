"""A seeded regime-switching market simulator with a known hidden truth.

A Markov chain over the five regimes drives SPY, HYG, IEF, TLT, VIXY, the 10Y-2Y slope and
news tone; each stock moves with SPY through its beta plus an idiosyncratic part set by its
own hidden health state (healthy / neutral / distressed, also a Markov chain). The hidden
paths are returned as ``truth_*`` and written to ``truth/`` by the pipeline.

Every series is drawn day by day from its own random stream, so a day's values depend only
on the seed and the day: fetching a longer span never changes the days already seen, and
adding symbols never changes the others.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from trader_ml.data.sources.base import RawMarket, SourceOptions, years_before
from trader_ml.errors import SourceError
from trader_ml.schema import HEALTH_STATES, HYG, IEF, SPY, TLT, TRADING_DAYS_PER_YEAR, VIXY

ORIGIN = dt.date(2000, 1, 3)  # first simulated trading day (a Monday)
CHOPPY = 3  # index of "choppy" in REGIMES


@dataclass(frozen=True)
class SyntheticParams:
    """Everything the simulator does, per regime in ``REGIMES`` order (annualised rates)."""

    seed: int = SourceOptions.seed  # the ingest flags' defaults are the simulator's
    n_symbols: int = SourceOptions.n_symbols
    # Mean regime durations in trading days: calm months, short panics.
    regime_duration: tuple[float, ...] = (100.0, 60.0, 40.0, 40.0, 15.0)
    # Where a regime goes when it ends (rows: from, columns: to; the diagonal is unused).
    regime_next: tuple[tuple[float, ...], ...] = (
        (0.00, 0.40, 0.15, 0.30, 0.15),
        (0.40, 0.00, 0.15, 0.25, 0.20),
        (0.10, 0.10, 0.00, 0.40, 0.40),
        (0.30, 0.25, 0.25, 0.00, 0.20),
        (0.05, 0.15, 0.40, 0.40, 0.00),
    )
    spy_drift: tuple[float, ...] = (0.20, 0.60, -0.60, 0.00, -1.50)
    spy_vol: tuple[float, ...] = (0.08, 0.16, 0.22, 0.18, 0.50)
    credit_drift: tuple[float, ...] = (0.03, 0.08, -0.20, -0.03, -0.60)  # HYG beyond its SPY beta
    treasury_drift: tuple[float, ...] = (-0.03, -0.10, 0.20, 0.00, 0.40)  # TLT; flight to quality
    vixy_drift: tuple[float, ...] = (-0.70, -0.40, 1.00, 0.20, 4.00)  # contango decay vs spikes
    tone_mean: tuple[float, ...] = (0.8, 0.8, -1.5, 0.0, -3.5)
    slope_target: tuple[float, ...] = (1.2, 1.0, 0.4, 0.7, 0.2)  # 10Y-2Y, percentage points
    # Stocks: beta range, and idiosyncratic drift / vol / mean duration per health state.
    beta_range: tuple[float, float] = (0.6, 1.4)
    health_drift: tuple[float, ...] = (0.10, 0.00, -0.45)
    health_vol: tuple[float, ...] = (0.18, 0.25, 0.45)
    health_duration: tuple[float, ...] = (250.0, 150.0, 60.0)
    health_next: tuple[tuple[float, ...], ...] = (
        (0.00, 0.85, 0.15),
        (0.50, 0.00, 0.50),
        (0.30, 0.70, 0.00),
    )
    health_initial: tuple[float, ...] = (0.50, 0.35, 0.15)
    choppy_reversion: float = 0.20  # daily pull of SPY toward its level when choppy began
    # Inside a regime, SPY's variance may cluster (a GARCH(1,1) multiplier of mean one on the
    # regime's variance) and its shocks may have fat tails (Student-t of ``tail_dof`` degrees,
    # scaled to unit variance). Zeros: constant variance, Gaussian shocks.
    garch_alpha: float = 0.0
    garch_beta: float = 0.0
    tail_dof: float = 0.0
    tone_noise: float = 0.6
    tone_persistence: float = 0.7
    slope_speed: float = 0.02
    slope_noise: float = 0.04


# The markets a user can simulate (``trader-ml ingest --source synthetic --market NAME``).
# "default" keeps its regimes easy to tell apart and long: the test that a model reads regimes
# at all. "calibrated" is fitted to the S&P 500 before 2000 (docs/benchmarks.md,
# bench/bench_regime_delay.py --calibrate): regimes a third as long whose drifts barely differ,
# GARCH(1,1) clustering and Student-t tails from SPY's 1990-1999 returns, so a regime known two
# weeks late is worth about what it is worth on real history (nothing).
MARKETS = ("default", "calibrated")
CALIBRATED_DURATION_SCALE = 0.3  # the calibration's choice (docs/benchmarks.md)
CALIBRATED_DRIFT_CONTRAST = 0.1  # each regime's drift pulled this far from a common 8% a year
CALIBRATED_REBOUND = 0.0  # extra chance that a bear market or crisis ends in a risk-on trend
CALIBRATED_GARCH = {"garch_alpha": 0.041, "garch_beta": 0.956, "tail_dof": 6.2}  # arch's fit on 1990-1999


def market_params(
    market: str, seed: int = SourceOptions.seed, n_symbols: int = SourceOptions.n_symbols
) -> SyntheticParams:
    """The simulator's parameters for one of ``MARKETS``."""
    base = SyntheticParams(seed=seed, n_symbols=n_symbols)
    if market == "default":
        return base
    if market != "calibrated":
        raise SourceError(f"unknown synthetic market {market!r}: use one of {', '.join(MARKETS)}")
    return shaped(base, CALIBRATED_DURATION_SCALE, CALIBRATED_DRIFT_CONTRAST, CALIBRATED_GARCH, CALIBRATED_REBOUND)


def shaped(
    base: SyntheticParams, duration_scale: float, drift_contrast: float, clustering: dict, rebound: float = 0.0
) -> SyntheticParams:
    """``base`` with regimes ``duration_scale`` as long (two days at least), SPY's regime drifts
    ``drift_contrast`` as far apart around 8% a year, the clustering and tails given, and a bear
    market or crisis ending in a risk-on trend with ``rebound`` more of the chance."""
    durations = tuple(max(2.0, d * duration_scale) for d in base.regime_duration)
    drifts = tuple(drift_contrast * d + (1.0 - drift_contrast) * 0.08 for d in base.spy_drift)
    moves = np.asarray(base.regime_next, dtype=float)
    moves = moves / moves.sum(axis=1, keepdims=True)
    for falling in (2, 4):  # bear, crisis -> risk_on_trend (index 1)
        moves[falling] = (1.0 - rebound) * moves[falling] + rebound * np.eye(len(moves))[1]
    return replace(
        base,
        regime_duration=durations,
        spy_drift=drifts,
        regime_next=tuple(tuple(float(x) for x in row) for row in moves),
        **clustering,
    )


def trading_days(start: dt.date, end: dt.date) -> pd.DatetimeIndex:
    """The simulator's calendar: weekdays."""
    return pd.bdate_range(start, end, name="date")


def _transition_matrix(duration: tuple[float, ...], nxt: tuple[tuple[float, ...], ...]) -> np.ndarray:
    stay = 1.0 - 1.0 / np.asarray(duration)
    move = np.asarray(nxt, dtype=float)
    move = move / move.sum(axis=1, keepdims=True)
    return np.diag(stay) + (1.0 - stay)[:, None] * move


def _markov_path(u: np.ndarray, matrix: np.ndarray, first: np.ndarray) -> np.ndarray:
    """States from uniforms ``u`` (days x chains); ``first`` is each chain's initial state."""
    cumulative = np.cumsum(matrix, axis=1)
    cumulative[:, -1] = 1.0
    states = np.empty(u.shape, dtype=np.int8)
    states[0] = first
    for t in range(1, len(u)):
        rows = cumulative[states[t - 1]]  # (chains, n_states)
        states[t] = (u[t][:, None] > rows).sum(axis=1)
    return states


def _streams(seed: int, *key: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, *key]).spawn(n)]


class SyntheticSource:
    """Seeded, deterministic market with every context column filled."""

    name = "synthetic"

    def __init__(self, params: SyntheticParams | None = None) -> None:
        self.params = params or SyntheticParams()
        if self.params.n_symbols < 1:
            raise SourceError("the synthetic source needs at least one symbol (--symbols N)")

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(f"SYN{i:03d}" for i in range(self.params.n_symbols))

    def default_range(self, today: dt.date) -> tuple[dt.date, dt.date]:
        end = today - dt.timedelta(days=1)
        return max(ORIGIN, years_before(end, 10)), end

    def _market(self, days: pd.DatetimeIndex) -> dict[str, np.ndarray]:
        p = self.params
        n = len(days)
        regime_rng, spy_rng, tlt_rng, ief_rng, credit_rng, vixy_rng, tone_rng, slope_rng = _streams(p.seed, 0, n=8)
        regime = _markov_path(
            regime_rng.random((n, 1)),
            _transition_matrix(p.regime_duration, p.regime_next),
            np.zeros(1, dtype=np.int8),  # history opens calm
        )[:, 0]

        def daily(values: tuple[float, ...]) -> np.ndarray:
            return np.asarray(values)[regime]

        root = np.sqrt(TRADING_DAYS_PER_YEAR)
        spy_z = self._shocks(spy_rng, n)
        spy_vol = daily(p.spy_vol) * np.sqrt(self._variance_multiplier(spy_z))
        spy_shock = spy_vol / root * spy_z
        spy = (daily(p.spy_drift) - 0.5 * spy_vol**2) / TRADING_DAYS_PER_YEAR + spy_shock
        spy = self._range_bound(spy, regime)
        tlt = daily(p.treasury_drift) / TRADING_DAYS_PER_YEAR + 0.14 / root * tlt_rng.standard_normal(n)
        ief = 0.45 * tlt + 0.01 / root * ief_rng.standard_normal(n)
        hyg = 0.35 * spy + daily(p.credit_drift) / TRADING_DAYS_PER_YEAR + 0.03 / root * credit_rng.standard_normal(n)
        vixy = daily(p.vixy_drift) / TRADING_DAYS_PER_YEAR - 2.5 * spy_shock + 0.25 / root * vixy_rng.standard_normal(n)
        tone_noise = np.empty(n)
        slope = np.empty(n)
        shocks = tone_rng.standard_normal(n)
        slope_shocks = slope_rng.standard_normal(n)
        tone_noise[0], slope[0] = shocks[0] * p.tone_noise, p.slope_target[0]
        target = daily(p.slope_target)
        for t in range(1, n):
            tone_noise[t] = p.tone_persistence * tone_noise[t - 1] + p.tone_noise * shocks[t]
            slope[t] = slope[t - 1] + p.slope_speed * (target[t] - slope[t - 1]) + p.slope_noise * slope_shocks[t]
        return {
            "regime": regime,
            "log_returns": np.column_stack([spy, hyg, ief, vixy, tlt]),
            "tone": daily(p.tone_mean) + tone_noise,
            "slope": slope,
        }

    def _shocks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Unit-variance daily shocks: Gaussian, or Student-t with ``tail_dof`` degrees."""
        dof = self.params.tail_dof
        if dof == 0.0:
            return rng.standard_normal(n)
        return rng.standard_t(dof, n) * np.sqrt((dof - 2.0) / dof)

    def _variance_multiplier(self, z: np.ndarray) -> np.ndarray:
        """GARCH(1,1) of mean one on the regime's variance, driven by SPY's own shocks ``z``:
        h_t = 1 - a - b + (a z_{t-1}^2 + b) h_{t-1} (ones when a = b = 0)."""
        a, b = self.params.garch_alpha, self.params.garch_beta
        h = np.ones(len(z))
        if a == 0.0 and b == 0.0:
            return h
        for t in range(1, len(z)):
            h[t] = 1.0 - a - b + (a * z[t - 1] ** 2 + b) * h[t - 1]
        return h

    def _range_bound(self, spy: np.ndarray, regime: np.ndarray) -> np.ndarray:
        """Choppy markets go nowhere: pull SPY back toward its level when the regime began."""
        pull = self.params.choppy_reversion
        out = spy.copy()
        drift_since = 0.0
        for t in range(1, len(spy)):
            if regime[t] != CHOPPY:
                drift_since = 0.0
                continue
            if regime[t - 1] != CHOPPY:
                drift_since = 0.0
            out[t] = spy[t] - pull * drift_since
            drift_since += out[t]
        return out

    def _stocks(self, days: pd.DatetimeIndex, spy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log prices and health states, each days x symbols."""
        p = self.params
        n, k = len(days), p.n_symbols
        matrix = _transition_matrix(p.health_duration, p.health_next)
        log_prices = np.empty((n, k))
        states = np.empty((n, k), dtype=np.int8)
        drift, vol = np.asarray(p.health_drift), np.asarray(p.health_vol)
        for i in range(k):
            setup_rng, state_rng, move_rng = _streams(p.seed, 1, i, n=3)
            beta = setup_rng.uniform(*p.beta_range)
            start_price = 50.0 * np.exp(setup_rng.normal(0.0, 0.5))
            first = setup_rng.choice(len(HEALTH_STATES), p=p.health_initial)
            state = _markov_path(state_rng.random((n, 1)), matrix, np.array([first], dtype=np.int8))[:, 0]
            idio = (drift[state] - 0.5 * vol[state] ** 2) / TRADING_DAYS_PER_YEAR + vol[state] / np.sqrt(
                TRADING_DAYS_PER_YEAR
            ) * move_rng.standard_normal(n)
            log_ret = beta * spy + idio
            log_ret[0] = 0.0
            log_prices[:, i] = np.log(start_price) + np.cumsum(log_ret)
            states[:, i] = state
        return log_prices, states

    def fetch(self, start: dt.date, end: dt.date) -> RawMarket:
        start = max(start, ORIGIN)  # nothing is simulated before the origin
        if end < start:
            raise SourceError(f"--end {end} is before --start {start}")
        days = trading_days(ORIGIN, end)
        market = self._market(days)
        log_returns = market["log_returns"].copy()
        log_returns[0] = 0.0
        etf = 100.0 * np.exp(np.cumsum(log_returns, axis=0))
        stock_log_prices, health = self._stocks(days, log_returns[:, 0])
        closes = pd.DataFrame(
            np.column_stack([etf, np.exp(stock_log_prices)]),
            index=days,
            columns=[SPY, HYG, IEF, VIXY, TLT, *self.symbols],
        )
        keep = days >= pd.Timestamp(start)
        return RawMarket(
            closes=closes[keep],
            symbols=self.symbols,
            yield_slope=pd.Series(market["slope"], index=days)[keep],
            news_tone=pd.Series(market["tone"], index=days)[keep],
            truth_regime=pd.Series(market["regime"], index=days)[keep],
            truth_health=pd.DataFrame(health, index=days, columns=list(self.symbols))[keep],
        )
