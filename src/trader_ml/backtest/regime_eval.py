"""The regime rows of a backtest: the model (per seed), its rules, buy-and-hold, an HMM, a jump
model and, on synthetic data, the oracle; each turned into exposure by the one fixed rule.

Day d of a period is traded on what was known at the previous close: every row's answer for
d is its answer as of the trading day before d, computed from rows up to that day only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader_ml.backtest.allocation import performance, performance_by_year
from trader_ml.backtest.config import BacktestConfig, Period
from trader_ml.backtest.history import regime_history
from trader_ml.backtest.references import hmm_regime_probs, jump_regime_probs, oracle_regime_probs
from trader_ml.backtest.risk_rules import rule_exposures
from trader_ml.exposure import exposure, risk_budget, strategy_returns, window_vols
from trader_ml.schema import CONTEXT_FEATURES, REGIMES
from trader_ml.serving.artifacts import RegimeModel
from trader_ml.stats import against_model
from trader_ml.store import Store
from trader_ml.training.labeller import hindsight_labels
from trader_ml.training.metrics import regime_metrics

REFERENCE_SEED = 0  # the HMM and jump model are fit with this seed at every refit


@dataclass
class Prepared:
    context: pd.DataFrame
    values: np.ndarray  # (days, 8)
    dates: pd.DatetimeIndex
    labels: np.ndarray  # hindsight labels fit on every day (judging only)
    truth: np.ndarray | None  # the simulator's regimes, when the store has them


def prepare(
    frame: pd.DataFrame, days: pd.DatetimeIndex, plan: list[Period], store: Store | None, where: str
) -> Prepared:
    from trader_ml.data.truth import regime_truth

    return Prepared(
        context=frame,
        values=frame[list(CONTEXT_FEATURES)].to_numpy(dtype=np.float64),
        dates=days,
        labels=hindsight_labels(frame),
        truth=regime_truth(store, frame["date"]),
    )


def _stitch(plan: list[Period], answer) -> np.ndarray:
    """Concatenate ``answer(period) -> (period days, 5)`` over the periods."""
    return np.concatenate([answer(p) for p in plan])


def references(prepared: Prepared, plan: list[Period]) -> dict[str, np.ndarray]:
    """HMM, jump-model and oracle probabilities of every test day (as of the day before), each
    refit on the training days of its period."""
    r = prepared.values[:, CONTEXT_FEATURES.index("spy_return_1d")]
    out = {
        "hmm": _stitch(
            plan,
            lambda p: hmm_regime_probs(r[p.train_first : p.stop - 1], p.first - p.train_first, REFERENCE_SEED)[
                p.first - p.train_first - 1 :
            ],
        ),
        "jump_model": _stitch(
            plan,
            lambda p: jump_regime_probs(r[p.train_first : p.stop - 1], p.first - p.train_first, REFERENCE_SEED)[
                p.first - p.train_first - 1 :
            ],
        ),
    }
    if prepared.truth is not None:
        out["oracle"] = _stitch(
            plan,
            lambda p: oracle_regime_probs(
                prepared.values[p.train_first : p.stop - 1],
                prepared.truth[p.train_first : p.stop - 1],
                p.first - p.train_first,
            )[p.first - p.train_first - 1 :],
        )
    return out


def model_probs(prepared: Prepared, plan: list[Period], refits, seed: int) -> np.ndarray:
    """The exported model of each period answering each of its days as of the day before."""

    def answer(i: int, p: Period) -> np.ndarray:
        model = RegimeModel.from_bytes(refits.models[(i, seed)])
        lo = max(0, p.first - 1 - (model.lookback - 1))
        probs, _ = regime_history(prepared.values[lo : p.stop - 1], model)
        return probs[p.first - 1 - lo :]

    return np.concatenate([answer(i, p) for i, p in enumerate(plan)])


def prior_exposures(prepared: Prepared, plan: list[Period], refits, seed: int, probs: np.ndarray) -> np.ndarray:
    """The risk budget of each test day: variance targeting's exposure as of the day before, with
    each period's volatility target and center from its own refit (fit on its training days),
    moved by the model's probabilities."""
    vols = window_vols(prepared.values[:, CONTEXT_FEATURES.index("spy_return_1d")])
    out, at = [], 0
    for i, p in enumerate(plan):
        prior = RegimeModel.from_bytes(refits.models[(i, seed)]).metadata["exposure_prior"]
        days = p.stop - p.first
        out.append(risk_budget(vols[p.first - 1 : p.stop - 1], probs[at : at + days], prior))
        at += days
    return np.concatenate(out)


def _classification(y: np.ndarray | None, probs: np.ndarray) -> dict | None:
    if y is None:
        return None
    known = (y >= 0) & np.isfinite(probs).all(axis=1)
    return regime_metrics(y[known], probs[known]) if known.any() else None


def evaluate(prepared: Prepared, plan: list[Period], refits, references_: dict, config: BacktestConfig):
    test = np.concatenate([np.arange(p.first, p.stop) for p in plan])
    as_of = test - 1
    dates = prepared.dates[test]
    market = prepared.values[test, CONTEXT_FEATURES.index("spy_return_1d")]
    rules, _ = regime_history(prepared.values)
    rows: dict[str, np.ndarray | None] = {}
    fallback_days = {}
    for seed in range(config.seeds):
        name = config.resolved_type if config.seeds == 1 else f"{config.resolved_type} seed {seed}"
        probs = model_probs(prepared, plan, refits, seed)
        missing = ~np.isfinite(probs).all(axis=1)
        probs[missing] = rules[as_of][missing]  # what serving does when the model cannot answer
        rows[name], fallback_days[name] = probs, int(missing.sum())
    rows["rules"] = rules[as_of]
    rows["buy_and_hold"] = None
    rows.update(references_)
    labels = prepared.labels[as_of]
    truth = prepared.truth[as_of] if prepared.truth is not None else None
    table, columns = {}, {"date": dates, "as_of": prepared.dates[as_of], "market_return": market, "label": labels}
    if truth is not None:
        columns["truth"] = truth
    exposures = {name: (np.ones(len(test)) if probs is None else exposure(probs)) for name, probs in rows.items()}
    first = next(iter(rows))  # the model's row (its first seed) also as a correction of variance targeting
    exposures[f"{first}_vt_prior"] = prior_exposures(prepared, plan, refits, 0, rows[first])
    rules_only = rule_exposures(prepared.values[:, CONTEXT_FEATURES.index("spy_return_1d")])
    exposures.update({name: held[as_of] for name, held in rules_only.items()})
    returns_of = {}
    for name, held in exposures.items():
        probs = rows.get(name)
        returns = returns_of[name] = strategy_returns(held, market, config.cost_bp)
        table[name] = {
            "performance": performance(returns, held),
            "by_year": performance_by_year(dates, returns, held),
            "vs_labels": None if probs is None else _classification(labels, probs),
            "vs_truth": None if probs is None else _classification(truth, probs),
        }
        if name in fallback_days:
            table[name]["fallback_days"] = fallback_days[name]
        columns[f"{name}_exposure"] = held
        columns[f"{name}_return"] = returns
        if probs is not None:
            columns[f"{name}_regime"] = np.asarray(REGIMES, dtype=object)[probs.argmax(axis=1)]
            for k, regime in enumerate(REGIMES):
                columns[f"{name}_p_{regime}"] = probs[:, k]
    model = next(iter(rows))  # the model's row (its first seed)
    for name in table:
        table[name]["vs_model"] = against_model(returns_of[model], returns_of[name])
    # The prior row is judged against the rule it corrects, too: a correction that knows nothing is that rule.
    prior = f"{first}_vt_prior"
    table[prior]["vs_variance_target"] = against_model(returns_of[prior], returns_of["variance_target"])
    summary = {"kind": "regime", "rows": table, "test_days": int(len(test)), "model_row": model}
    return summary, pd.DataFrame(columns)
