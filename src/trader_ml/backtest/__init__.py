"""Walk-forward backtests of the regime and health models next to the rows a user could pick instead.

``run_backtest(BacktestConfig(...), store)`` is what ``trader-ml backtest`` runs; docs/backtest.md
explains every row and column.
"""

from trader_ml.backtest.config import BacktestConfig
from trader_ml.backtest.runner import BacktestResult, run_backtest

__all__ = ["BacktestConfig", "BacktestResult", "run_backtest"]
