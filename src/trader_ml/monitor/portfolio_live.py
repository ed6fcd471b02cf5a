"""The served portfolio's live record: the stored targets held by the policy's own code through the
days after them, next to equal weights and inverse volatility x variance targeting held the same
way over the same days, with intervals and a plain verdict."""

from __future__ import annotations

import pandas as pd

from trader_ml.backtest.allocation import performance
from trader_ml.backtest.portfolio_eval import wide
from trader_ml.backtest.risk_rules import rule_exposures
from trader_ml.portfolio import POLICY, VOL_COLUMN, equal_weights, hold, inverse_vol_weights
from trader_ml.stats import against_model

MIN_DAYS = 63  # as the regime verdict: fewer days of a Sharpe ratio say nothing


def portfolio_record(served: pd.DataFrame, context: pd.DataFrame, features: pd.DataFrame) -> dict:
    """``served``: (date, symbol, weight) of each stored answer's targets. Each answered day's
    targets are traded at its close and held through the next trading day, whose returns are
    known once it is ingested."""
    if served.empty:
        return {"days": 0, "verdict": f"too few days to say (0 of the {MIN_DAYS} needed)"}
    days = pd.DatetimeIndex(context["date"])
    answered = pd.DatetimeIndex(sorted(served["date"].unique()))
    position = days.get_indexer(answered)
    known = (position >= 0) & (position + 1 < len(days))
    as_of, held_on = answered[known], days[position[known] + 1]
    symbols = sorted(set(served["symbol"]) | set(features["symbol"]))
    targets = (
        served.pivot_table(index="date", columns="symbol", values="weight", aggfunc="first")
        .reindex(index=as_of, columns=symbols)
        .fillna(0.0)
        .to_numpy()
    )
    returns = wide(features, "return_1d", held_on, symbols)
    vols = wide(features, VOL_COLUMN, as_of, symbols)
    vt = rule_exposures(context["spy_return_1d"].to_numpy(dtype=float))["variance_target"][position[known]]
    rows = {
        "models": targets,
        "equal_weight": equal_weights(vols),
        "inverse_vol_x_vt": inverse_vol_weights(vols) * vt[:, None],
    }
    books = {name: hold(weights, returns, POLICY) for name, weights in rows.items()}
    out: dict = {"days": int(len(as_of)), "pending": int((~known).sum())}
    for name, book in books.items():
        out[name] = performance(book.returns, book.weights.sum(axis=1)) if len(as_of) > 1 else {"days": len(as_of)}
    worse = []
    if len(as_of) >= MIN_DAYS:
        out["vs"] = {}
        for name in ("equal_weight", "inverse_vol_x_vt"):
            vs = against_model(books["models"].returns, books[name].returns)
            gap = {"sharpe_difference": vs["sharpe_difference"], "interval": vs["sharpe_interval"]}
            out["vs"][name] = gap
            if gap["interval"][1] < 0:
                worse.append(
                    f"{name} (Sharpe {gap['sharpe_difference']:+.2f}, 90% [{gap['interval'][0]:+.2f}, {gap['interval'][1]:+.2f}])"
                )
    out["verdict"] = (
        f"too few days to say ({len(as_of)} of the {MIN_DAYS} needed)"
        if len(as_of) < MIN_DAYS
        else "worse than " + " and ".join(worse)
        if worse
        else "in line with the simple portfolios (the live days cannot tell them apart)"
    )
    return out
