"""Rule-based regime and heuristic health baselines (numpy only): serving's fallback, training's bar.

The regime rules read only the context columns of days up to t. The training labels are the
same rules read ``label_horizon`` days later (``training/labels.py``), so the baseline is exactly what
the labels would say with no look-ahead. docs/models.md explains every threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES, REGIMES, TRADING_DAYS_PER_YEAR, VOL_BUCKETS

CALM, RISK_ON, RISK_OFF, CHOPPY, PANIC = range(len(REGIMES))
_COL = {name: i for i, name in enumerate(CONTEXT_FEATURES)}


@dataclass(frozen=True)
class RegimeRules:
    """Thresholds of the regime rules; windows count trading days."""

    window: int = 21  # trend and volatility window
    smoothing: int = 15  # the answer is the most frequent window class of this many days
    panic_window: int = 10  # panics are short: their volatility is read over two weeks
    panic_vol: float = 0.35  # annualised
    panic_vol_stressed: float = 0.30  # ... or this much with stress >= panic_stress
    panic_stress: float = 2.0
    calm_vol: float = 0.12
    # Direction: the 21-day trend in units of trend_unit, averaged with minus the stress when a
    # stress signal is present. At or above +direction_on is a risk-on trend, at or below
    # -direction_on a risk-off trend; calm needs low volatility and direction above calm_direction.
    trend_unit: float = 0.03
    direction_on: float = 0.6
    calm_direction: float = -0.5
    tone_reference: int = 252  # tone is judged against its mean over this many days (or all given)
    # One stress unit for each signal (a 21-day change of this size, or this tone anomaly).
    credit_unit: float = 0.02
    vixy_unit: float = 0.25
    risk_off_unit: float = 0.05
    tone_unit: float = 1.0


DEFAULT_RULES = RegimeRules()


def _trailing(values: np.ndarray, window: int, reduce) -> np.ndarray:
    """``reduce`` over each trailing window (NaN until the window is full)."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        out[window - 1 :] = reduce(np.lib.stride_tricks.sliding_window_view(values, window), axis=1)
    return out


def _nanmean(values: np.ndarray, axis: int, empty: float = np.nan) -> np.ndarray:
    """Mean of the present values along ``axis``; ``empty`` where none is present."""
    present = ~np.isnan(values)
    count = present.sum(axis=axis)
    total = np.where(present, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), empty)


def regime_signals(context: np.ndarray, rules: RegimeRules = DEFAULT_RULES) -> dict[str, np.ndarray]:
    """Trend, volatility, stress and direction of each day from ``context`` rows (days x
    CONTEXT_FEATURES), each from the trailing window ending that day.

    ``stress`` averages whichever of credit, VIX ETF, TLT/SPY and tone are present (0 if none):
    positive means risk aversion.
    """
    log_returns = np.log1p(context[:, _COL["spy_return_1d"]])
    annual = np.sqrt(float(TRADING_DAYS_PER_YEAR))
    tone = context[:, _COL["gdelt_avg_tone"]]
    tone_now = _trailing(tone, rules.window, _nanmean)
    tone_ref = _trailing(tone, rules.tone_reference, _nanmean)
    for t in range(min(rules.tone_reference - 1, len(tone))):  # fewer rows than the reference: use them all
        tone_ref[t] = _nanmean(tone[: t + 1], axis=0)
    stress_parts = np.column_stack(
        [
            -context[:, _COL["credit_spread_proxy"]] / rules.credit_unit,
            context[:, _COL["vixy_return_21d"]] / rules.vixy_unit,
            context[:, _COL["risk_off_proxy"]] / rules.risk_off_unit,
            -(tone_now - tone_ref) / rules.tone_unit,
        ]
    )
    trend = _trailing(log_returns, rules.window, np.sum) * 21.0 / rules.window
    stress = _nanmean(stress_parts, axis=1)
    trend_units = trend / rules.trend_unit
    return {
        "trend": trend,
        "vol": _trailing(log_returns, rules.window, lambda w, axis: w.std(axis=axis, ddof=1)) * annual,
        "panic_vol": _trailing(log_returns, rules.panic_window, lambda w, axis: w.std(axis=axis, ddof=1)) * annual,
        "stress": np.nan_to_num(stress),
        "direction": np.where(np.isnan(stress), trend_units, (trend_units - stress) / 2.0),
    }


def window_classes(signals: dict[str, np.ndarray], rules: RegimeRules = DEFAULT_RULES) -> np.ndarray:
    """One regime per day from its window's signals, before smoothing (-1 where unknown)."""
    direction, vol, panic_vol, stress = (signals[k] for k in ("direction", "vol", "panic_vol", "stress"))
    classes = np.full(len(direction), CHOPPY, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        risk_on = direction >= rules.direction_on
        calm = (vol < rules.calm_vol) & (direction > rules.calm_direction)
        risk_off = direction <= -rules.direction_on
        panic = (panic_vol >= rules.panic_vol) | (
            (panic_vol >= rules.panic_vol_stressed) & (stress >= rules.panic_stress)
        )
    classes[risk_on] = RISK_ON
    classes[calm] = CALM
    classes[risk_off] = RISK_OFF
    classes[panic] = PANIC
    classes[np.isnan(vol) | np.isnan(panic_vol)] = -1
    return classes


def smooth(classes: np.ndarray, rules: RegimeRules = DEFAULT_RULES) -> tuple[np.ndarray, np.ndarray]:
    """(regime, probabilities) of each day from the last ``smoothing`` window classes.

    The regime is the most frequent class of those days (today's class wins a tie), except
    that a panic shows at once. Probabilities are the class shares of those days, with the
    chosen regime lifted to at least one half.
    """
    n, k = len(classes), len(REGIMES)
    onehot = np.zeros((n, k))
    known = classes >= 0
    onehot[known, classes[known]] = 1.0
    counts = np.zeros((n, k))
    ready = np.zeros(n, dtype=bool)
    if n >= rules.smoothing:
        windows = np.lib.stride_tricks.sliding_window_view(onehot, rules.smoothing, axis=0)  # (n-s+1, k, s)
        counts[rules.smoothing - 1 :] = windows.sum(axis=2)
        ready[rules.smoothing - 1 :] = windows.sum(axis=(1, 2)) == rules.smoothing  # every day known
    regime = np.full(n, -1, dtype=np.int64)
    tie_break = counts + 0.5 * onehot
    regime[ready] = np.argmax(tie_break[ready], axis=1)
    regime[ready & (classes == PANIC)] = PANIC
    probs = np.full((n, k), np.nan)
    chosen = np.zeros((n, k))
    chosen[ready, regime[ready]] = 1.0
    mixed = (counts[ready] + rules.smoothing * chosen[ready]) / (2.0 * rules.smoothing)
    probs[ready] = 0.95 * mixed + 0.01  # no regime is ever impossible
    return regime, probs


def baseline_regimes(context: np.ndarray, rules: RegimeRules = DEFAULT_RULES) -> tuple[np.ndarray, np.ndarray]:
    """Rule regime and probabilities for every day, each from days up to that day only."""
    return smooth(window_classes(regime_signals(context, rules), rules), rules)


# Scale of each context feature for the baseline's embedding: tanh(x / scale), NaN -> 0.
EMBEDDING_SCALES = np.array([0.01, 0.05, 0.20, 1.0, 0.02, 0.25, 0.05, 2.0])


def baseline_regime_embedding(context_row: np.ndarray) -> np.ndarray:
    """The rule baseline's 8-dim embedding: today's context features, squashed to (-1, 1)."""
    return np.tanh(np.nan_to_num(np.asarray(context_row, dtype=float) / EMBEDDING_SCALES))


def min_baseline_days(rules: RegimeRules = DEFAULT_RULES) -> int:
    """Context rows the rules need before they answer."""
    return rules.window + rules.smoothing - 1


# --- health -----------------------------------------------------------------------------------

_ASSET = {name: i for i, name in enumerate(ASSET_FEATURES)}


@dataclass(frozen=True)
class HealthRules:
    """The heuristic health score, the volatility buckets and the behaviour rules."""

    # score = sigmoid(prior_logit + (risk - center) / width), with
    # risk = -(0.6 vol_63d + 0.4 vol_21d) + 0.1 drawdown_63d + 0.05 return_63d + 0.05 rel_strength_63d.
    # Volatility dominates: it clusters, so a volatile stock is the likeliest to fall hard next.
    vol_63d_weight: float = 0.6
    vol_21d_weight: float = 0.4
    drawdown_weight: float = 0.1
    trend_weight: float = 0.05
    strength_weight: float = 0.05
    center: float = -0.30  # a stock with 30% volatility and no trend ...
    prior_logit: float = 1.4  # ... scores 0.8, the base rate of not landing in the worst fifth
    width: float = 0.08
    # vol_21d terciles of the bundled sample (1990-2022); a trained model carries its own.
    vol_boundaries: tuple[float, float] = (0.19, 0.31)
    # momentum: 5-, 21- and 63-day returns share a sign and the 63-day move is at least this big
    momentum_min_move: float = 0.05
    # mean reversion: the 5-day return opposes the 63-day trend and is at least this many
    # 5-day standard deviations (vol_21d * sqrt(5/252)) big
    reversal_min_sigmas: float = 1.0


DEFAULT_HEALTH_RULES = HealthRules()


def baseline_health(features: np.ndarray, rules: HealthRules = DEFAULT_HEALTH_RULES) -> np.ndarray:
    """Heuristic health score in (0, 1) of rows (n x ASSET_FEATURES)."""
    f = np.asarray(features, dtype=float)
    risk = (
        -(rules.vol_63d_weight * f[:, _ASSET["vol_63d"]] + rules.vol_21d_weight * f[:, _ASSET["vol_21d"]])
        + rules.drawdown_weight * f[:, _ASSET["drawdown_63d"]]
        + rules.trend_weight * f[:, _ASSET["return_63d"]]
        + rules.strength_weight * f[:, _ASSET["rel_strength_63d"]]
    )
    return 1.0 / (1.0 + np.exp(-(rules.prior_logit + (risk - rules.center) / rules.width)))


def vol_buckets(vol_21d: np.ndarray, boundaries: tuple[float, float]) -> np.ndarray:
    """'low', 'med' or 'high' by ``vol_21d`` against the two tercile boundaries."""
    index = np.searchsorted(np.asarray(boundaries, dtype=float), np.asarray(vol_21d, dtype=float), side="right")
    return np.asarray(VOL_BUCKETS, dtype=object)[index]


def behaviors(features: np.ndarray, rules: HealthRules = DEFAULT_HEALTH_RULES) -> np.ndarray:
    """'momentum', 'mean_reversion' or 'mixed' from the return horizons (see HealthRules)."""
    f = np.asarray(features, dtype=float)
    r5, r21, r63 = (f[:, _ASSET[c]] for c in ("return_5d", "return_21d", "return_63d"))
    move_5d = f[:, _ASSET["vol_21d"]] * np.sqrt(5.0 / TRADING_DAYS_PER_YEAR)
    momentum = (np.sign(r5) == np.sign(r21)) & (np.sign(r21) == np.sign(r63)) & (np.abs(r63) >= rules.momentum_min_move)
    reversal = (np.sign(r5) != np.sign(r63)) & (np.abs(r5) >= rules.reversal_min_sigmas * move_5d)
    out = np.full(len(f), "mixed", dtype=object)
    out[reversal] = "mean_reversion"
    out[momentum] = "momentum"
    return out


# Scale of each asset feature for the baseline's latent: tanh(x / scale), then six zeros.
LATENT_SCALES = np.array([0.02, 0.05, 0.1, 0.2, 0.3, 0.3, 0.1, 0.2, 0.1, 0.2])


def baseline_health_latent(features: np.ndarray) -> np.ndarray:
    """The heuristic's 16-dim latent: the ten features squashed to (-1, 1), padded with zeros
    (a rule has no learned representation; the shape matches the trained model's)."""
    squashed = np.tanh(np.asarray(features, dtype=float)[:, : len(ASSET_FEATURES)] / LATENT_SCALES)
    return np.concatenate([squashed, np.zeros((len(squashed), 16 - squashed.shape[1]))], axis=1)
