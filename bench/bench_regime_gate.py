"""Does the regime gate's metric agree with what is served? Each refit of a regime backtest, on
its own test window (what the gate sees at promotion): macro-F1 minus the rule baseline's, with
the gate's interval, and the served risk budget's Sharpe minus variance targeting's (what serves
when the model does not), with its interval; then, in the test year the refit answered, the risk
budget's Sharpe minus variance targeting's.

    python bench/bench_regime_gate.py [--job regime-sample|regime-synthetic] [--seed 0]

Runs the backtest first (cached refits are read back), so a cold run takes the backtest's time.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pandas as pd
from bench_backtest import JOBS, synthetic  # bench/bench_backtest.py
from scipy.stats import spearmanr
from stores import sample_store  # bench/stores.py

from trader_ml.backtest import BacktestConfig, run_backtest
from trader_ml.backtest.config import periods
from trader_ml.backtest.refit import load_cached
from trader_ml.backtest.runner import load_frame, make_jobs
from trader_ml.baselines import baseline_regimes
from trader_ml.schema import CONTEXT_FEATURES
from trader_ml.serving.artifacts import RegimeModel
from trader_ml.training.gate import regime_comparison
from trader_ml.training.regime import prepare_regime, regime_train_config
from trader_ml.training.regime import windows as regime_windows


def own_window(data: bytes, metrics: dict, rows: pd.DataFrame) -> dict:
    """The gate's macro-F1 check and the served exposure's check on the refit's own test days."""
    prep = prepare_regime(rows, regime_train_config(metrics["model_type"]))
    test = prep.split.test
    values = rows[list(CONTEXT_FEATURES)].to_numpy(dtype=np.float64)
    model = RegimeModel.from_bytes(data)
    pred = model.predict_proba(regime_windows(values, test, model.lookback)).probs.argmax(axis=1)
    f1 = regime_comparison(prep.labels[test], pred, baseline_regimes(values)[0][test])
    served = metrics["own_test_window"]["served_sharpe_vs_variance_target"]
    drawdown = metrics["own_test_window"]["served_drawdown_vs_variance_target"]
    return {"f1": f1.difference, "f1_low": f1.low, "f1_high": f1.high, "f1_passes": f1.low > 0,
            "served": served[0], "served_low": served[1], "served_high": served[2],
            "drawdown": drawdown[0], "drawdown_high": drawdown[2]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", default="regime-sample", choices=["regime-sample", "regime-synthetic"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _, start, end = JOBS[args.job]
    config = BacktestConfig(model="regime", start=start, end=end)
    with tempfile.TemporaryDirectory() as tmp:
        store = sample_store(tmp) if args.job == "regime-sample" else synthetic(tmp, args.seed, 20)
        result = run_backtest(config, store, log=lambda _: None, progress=False)
        rows = result.summary["rows"]
        model_row = next(iter(rows))
        frame, where = load_frame(config, store, None)
        days = pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(frame["date"])))
        plan = periods(days, config, where)
        table = {}
        for (i, _), job in make_jobs(config, frame, days, plan).items():
            data, metrics = load_cached(store, job)
            year = plan[i].refit_date.year
            facts = own_window(data, metrics, job.rows)
            budget, vt = rows[f"{model_row}_vt_prior"]["by_year"], rows["variance_target"]["by_year"]
            key = year if year in budget else str(year)
            facts["test_year"] = budget[key]["sharpe"] - vt[key]["sharpe"]
            table[year] = facts
    out = pd.DataFrame(table).T
    print(out.round(3).to_string())
    passed = out["f1_passes"].astype(bool)
    served_ok = out["served_high"] >= 0  # not below variance targeting beyond the noise
    print(
        f"\nrefits: {len(out)}; macro-F1 gate passes {int(passed.sum())}; served not below VT beyond noise {int(served_ok.sum())}"
    )
    print(f"the two disagree on {int((passed != served_ok).sum())} refits")
    # what is served, judged: Sharpe, drawdown and macro-F1 none behind beyond the noise
    not_behind = served_ok & (out["drawdown_high"] >= 0) & (out["f1_high"] >= 0)
    print(f"served Sharpe, served drawdown and macro-F1 all not behind beyond the noise: {int(not_behind.sum())}")
    print(f"test year served - VT where that passes {out.loc[not_behind, 'test_year'].mean():+.3f}, "
          f"where it fails {out.loc[~not_behind, 'test_year'].mean():+.3f}")  # fmt: skip
    for name in ("f1", "served"):
        rho = spearmanr(out[name].astype(float), out["test_year"].astype(float)).statistic
        print(f"rank correlation of the own-window {name} difference with the test year's served - VT: {rho:+.2f}")
    print(f"test year served - VT: mean {out['test_year'].mean():+.3f}; where the macro-F1 gate passes "
          f"{out.loc[passed, 'test_year'].mean():+.3f}, where it fails {out.loc[~passed, 'test_year'].mean():+.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
