"""The pages a user reads: the training report, the backtest page and its printed tables, the live section."""
