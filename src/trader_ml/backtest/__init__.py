"""Walk-forward backtests of the regime and health models next to the rows a user could pick instead.

``run_backtest(BacktestConfig(...), store)`` is what ``trader-ml backtest`` runs; docs/backtest.md
explains every row and column. The runner is imported on first use, so reading the configuration
(as the command line does for its defaults) loads neither pandas nor torch.
"""

from trader_ml.backtest.config import BacktestConfig

__all__ = ["BacktestConfig", "BacktestResult", "run_backtest"]


def __getattr__(name: str):
    if name in ("BacktestResult", "run_backtest"):
        from trader_ml.backtest import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
