"""The served ``portfolio``: the weights the bot would hold from the day's two answers, by the
policy and the risk budget the portfolio backtest holds (``trader_ml.portfolio``,
``trader_ml.exposure``), so what is served is what was backtested. numpy only."""

from __future__ import annotations

import numpy as np

from trader_ml.exposure import prior_exposure, risk_budget, window_vols
from trader_ml.portfolio import POLICY, VOL_COLUMN, target_weights
from trader_ml.schema import REGIMES


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def budget(regime: dict, prior: dict | None, context_rows: list) -> tuple[float, str]:
    """(the day's exposure, what set it): the trained regime model's correction of variance
    targeting when its artifact carries the prior its training days fit; otherwise variance
    targeting alone, its target the median volatility of the served window (not a backtested
    row: said so)."""
    spy = np.array([_number(r.get("spy_return_1d")) if isinstance(r, dict) else np.nan for r in context_rows])
    vols = window_vols(spy)
    if prior is not None and regime.get("model_source") == "trained":
        probs = np.array([[regime["regime_probs"][name] for name in REGIMES]])
        return float(risk_budget(vols[-1:], probs, prior)[0]), f"risk budget of regime model {regime['model_version']}"
    known = vols[np.isfinite(vols)]
    if not len(known):
        return 1.0, "fully invested: no SPY return in the served window to target a volatility with"
    held = float(prior_exposure(vols[-1:], float(np.median(known)))[0])
    return held, "variance targeting alone: no trained regime model with an exposure prior serves"


def portfolio_answer(
    date: str, regime: dict, prior: dict | None, context_rows: list, feature_rows: list, health: dict, left: dict
) -> dict:
    """The day's target weights (to hold from the next trading day), the exposure, the versions,
    and each asset left out with why; ``left`` holds the symbols the health answer could not score."""
    exposure, source = budget(regime, prior, context_rows)
    symbols = [r.get("symbol") for r in feature_rows if isinstance(r, dict) and isinstance(r.get("symbol"), str)]
    symbols = sorted(set(symbols))
    vol_of = {
        r["symbol"]: _number(r.get(VOL_COLUMN))
        for r in feature_rows
        if isinstance(r, dict) and r.get("symbol") in symbols
    }
    scores = np.array([health[s]["health_score"] if s in health else np.nan for s in symbols], dtype=float)
    vols = np.array([vol_of.get(s, np.nan) for s in symbols], dtype=float)
    weights, why = target_weights(scores, vols, exposure, POLICY)
    versions = sorted({a.get("model_version") for a in health.values()})
    return {
        "as_of": date,
        "exposure": exposure,
        "exposure_source": source,
        "versions": {"regime": regime.get("model_version"), "health": versions[0] if len(versions) == 1 else versions},
        "weights": {s: float(w) for s, w in zip(symbols, weights, strict=True) if w > 0},
        "left_out": {s: left.get(s, reason) for s, reason in zip(symbols, why, strict=True) if reason is not None},
        "policy": {
            "leave_out_share": POLICY.leave_out_share,
            "rebalance_days": POLICY.rebalance_days,
            "drift_band": POLICY.drift_band,
        },
    }
