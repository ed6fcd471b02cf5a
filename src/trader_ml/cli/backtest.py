"""``trader-ml backtest``: the walk-forward backtest of a model next to the simple alternatives."""

from __future__ import annotations

import argparse

from trader_ml.backtest.config import MODELS, PORTFOLIO, REFITS, BacktestConfig
from trader_ml.cli.args import add_store_args, open_store_from, parse_date, positive_int
from trader_ml.errors import TraderMLError
from trader_ml.schema import HEALTH_TYPES, REGIME_TYPES

DEFAULTS = BacktestConfig()


def add_commands(sub) -> None:
    p = sub.add_parser("backtest", help="walk-forward backtest of a model next to the rules, an HMM, a jump model")
    p.add_argument(
        "--data",
        action="append",
        help="a context or features parquet file (default: the store's table); repeat it for several "
        "markets in one run: each is reported, then their pooled figures",
    )
    add_store_args(p)
    p.add_argument(
        "--model",
        default=DEFAULTS.model,
        choices=MODELS,
        help="regime, health, or portfolio: both models together as the bot holds them (default: %(default)s)",
    )
    p.add_argument(
        "--features",
        metavar="FEATURES.parquet",
        help="with --model portfolio: the features table (--data then names the context table)",
    )
    p.add_argument(
        "--model-type",
        choices=REGIME_TYPES + HEALTH_TYPES,
        help=f"the network refit each year (default: {REGIME_TYPES[0]} for regime, {HEALTH_TYPES[0]} for health)",
    )
    p.add_argument("--start", type=parse_date, help="first test day (default: the first refit 5 years into the data)")
    p.add_argument("--end", type=parse_date, help="last test day (default: the newest day)")
    p.add_argument("--refit", default=DEFAULTS.refit, choices=tuple(REFITS), help="(default: %(default)s)")
    p.add_argument(
        "--window-days", type=positive_int, help="train on the last N calendar days only (default: all earlier days)"
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULTS.epochs,
        help="maximum epochs per refit (default: %(default)s)",
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=DEFAULTS.seeds,
        help="seeds per refit, one row each (default: %(default)s)",
    )
    p.add_argument(
        "--cost-bp",
        type=float,
        default=DEFAULTS.cost_bp,
        help="cost per unit of exposure changed, basis points (default: %(default)s)",
    )
    p.add_argument("--workers", type=positive_int, help="parallel refit processes (default: one per core)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the refits on this Ray cluster (needs the cluster extra)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    p.set_defaults(func=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    from trader_ml.backtest import BacktestConfig, run_backtest
    from trader_ml.pages.backtest_text import summary_text

    config = BacktestConfig(
        model=args.model,
        model_type=args.model_type,
        start=args.start,
        end=args.end,
        refit=args.refit,
        window_days=args.window_days,
        epochs=args.epochs,
        seeds=args.seeds,
        cost_bp=args.cost_bp,
        workers=args.workers,
        ray_address=args.ray,
    )
    store = open_store_from(args, must_exist=not args.data)  # with --data it only receives the results
    if config.model == PORTFOLIO:
        return backtest_portfolio(args, config, store)
    if args.features:
        raise TraderMLError("--features goes with --model portfolio (a regime or health backtest reads --data)")
    results = []
    for data in args.data or [None]:
        result = run_backtest(config, store, data=data, progress=not args.quiet)
        print(summary_text(result.summary))
        print(f"results: {store.describe(result.key)} (index.html, summary.json, predictions.parquet)")
        results.append(result)
    if len(results) > 1:
        import hashlib
        import json

        from trader_ml.backtest.markets import pooled, pooled_text

        summary = pooled(results)
        ids = hashlib.sha256(" ".join(r.key for r in results).encode()).hexdigest()[:12]
        key = f"backtests/pooled-{summary['kind']}-{ids}/summary.json"
        store.write(key, json.dumps(summary, indent=2, default=float).encode())
        print(pooled_text(summary))
        print(f"pooled: {store.describe(key)}")
    return 0


def backtest_portfolio(args: argparse.Namespace, config, store) -> int:
    from trader_ml.backtest.portfolio_run import run_portfolio_backtest
    from trader_ml.pages.backtest_text import portfolio_text

    if args.data and len(args.data) > 1:
        raise TraderMLError("--model portfolio reads one market: one --data (context) and one --features")
    if bool(args.data) != bool(args.features):
        raise TraderMLError(
            "--model portfolio reads both tables from files or both from the store: give --data "
            "CONTEXT.parquet with --features FEATURES.parquet, or neither"
        )
    context = args.data[0] if args.data else None
    result = run_portfolio_backtest(config, store, context, args.features, progress=not args.quiet)
    print(portfolio_text(result.summary))
    print(f"results: {store.describe(result.key)} (index.html, summary.json, predictions.parquet)")
    return 0
