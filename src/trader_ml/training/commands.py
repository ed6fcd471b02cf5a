"""The single-model training commands (the training guide's train_regime.py / train_health.py)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from trader_ml.errors import TraderMLError
from trader_ml.partitions import date_window, last_day_before, read_file, read_table
from trader_ml.schema import REGIMES, TABLE_PREFIX
from trader_ml.store import LocalStore, Store, open_store


def no_data_message(store: Store, table: str) -> str:
    return (
        f"No historical data found: {store.describe(TABLE_PREFIX[table])} holds no partitions. "
        f"Ingest some first, e.g. trader-ml ingest --source sample --store {store.url}"
    )


def window_text(args: argparse.Namespace) -> str:
    parts = [f"from {args.start}" if args.start else "", f"to {args.end}" if args.end else ""]
    parts.append(f"before {args.until}" if args.until else "")
    return " ".join(p for p in parts if p)


def load_table(args: argparse.Namespace, table: str) -> tuple[pd.DataFrame, Store | None]:
    """The training table from ``--data FILE`` or from ``--store URL`` (last ``--max-days``),
    limited to ``--start`` .. ``--end`` and to days strictly before ``--until``."""
    if args.start and args.end and args.start > args.end:
        raise TraderMLError(f"--start {args.start} is after --end {args.end}")
    if args.data:
        frame, store = date_window(read_file(args.data, table), args.start, args.end, args.until), None
        if frame.empty:
            raise TraderMLError(f"{args.data}: no rows {window_text(args)}")
        return frame, store
    store = open_store(args.store, region=args.region, endpoint_url=args.endpoint_url)
    frame = read_table(store, table, args.max_days, args.start, last_day_before(args.end, args.until))
    if frame.empty:
        if args.start or args.end or args.until:
            raise TraderMLError(f"{store.describe(TABLE_PREFIX[table])}: no {table} rows {window_text(args)}")
        raise TraderMLError(no_data_message(store, table))
    return frame, store


def regime_truth(store: Store | None, dates: pd.Series) -> np.ndarray | None:
    """The simulator's regime index per context day, when the store has one for every day."""
    if store is None:
        return None
    truth = read_table(store, "truth_regime", start=dates.iloc[0].date(), end=dates.iloc[-1].date())
    if truth.empty:
        return None
    by_day = pd.Series(
        truth["regime"].map({r: i for i, r in enumerate(REGIMES)}).to_numpy(), index=pd.DatetimeIndex(truth["date"])
    )
    aligned = by_day.reindex(pd.DatetimeIndex(dates))
    return None if aligned.isna().any() else aligned.to_numpy(dtype=np.int64)


def artifact_path(output: str) -> Path:
    """Where the model goes: the training guide's ``.pkl`` names become ``.onnx`` (no pickles, ever)."""
    path = Path(output)
    if path.suffix == ".pkl":
        path = path.with_suffix(".onnx")
        print(f"note: models are ONNX files, not pickles: writing {path}")
    return path


def write_artifact(path: Path, data: bytes, metrics: dict) -> None:
    """The model and its metrics JSON beside it, each written whole or not at all."""
    path = path.expanduser().absolute()  # say exactly where: a relative path lands wherever the command ran
    folder = LocalStore(path.parent)
    metrics_name = path.stem + ".metrics.json"
    folder.write(path.name, data)
    folder.write(metrics_name, json.dumps(metrics, indent=2).encode())
    print(f"wrote {path} (sha256 {hashlib.sha256(data).hexdigest()[:16]}...) and {path.with_name(metrics_name)}")


def train_regime_command(args: argparse.Namespace) -> int:
    # training.regime first: without torch its import names the missing extra (metrics pulls in scipy,
    # which trips over a missing torch in its own way).
    from trader_ml.training.regime import regime_artifact, regime_train_config, train_regime  # noqa: I001
    from trader_ml.training.metrics import regime_table

    context, store = load_table(args, "context")
    truth = regime_truth(store, context["date"])
    config = regime_train_config(
        args.model_type, args.epochs, args.batch_size, args.seed, args.device, args.layers, args.label_horizon
    )
    result = train_regime(context, config, truth=truth, progress=not args.quiet)
    window = result.metrics["test_window"]
    print(
        f"test window {window['first_date']} .. {window['last_date']}: {window['days']} days, by label {window['days_per_regime']}"
    )
    columns = {
        k: result.metrics[k]
        for k in ("model", "baseline", "model_vs_truth", "baseline_vs_truth")
        if k in result.metrics
    }
    print(regime_table(columns))
    print_warnings(result.metrics["warnings"])
    data, metadata = regime_artifact(result)
    history = result.fit.history
    write_artifact(
        artifact_path(args.output),
        data,
        {**result.metrics, "fit": result.fit.summary(), "metadata": metadata, "history": history},
    )
    return 0


HEALTH_STATE_RANK = {"distressed": 0, "neutral": 1, "healthy": 2}  # higher is healthier


def health_truth(store: Store | None, features: pd.DataFrame) -> np.ndarray | None:
    """The simulator's hidden health state per feature row (2 healthy .. 0 distressed), if known."""
    if store is None:
        return None
    dates = features["date"]
    truth = read_table(store, "truth_health", start=dates.iloc[0].date(), end=dates.iloc[-1].date())
    if truth.empty:
        return None
    truth = truth.assign(rank=truth["health_state"].map(HEALTH_STATE_RANK), date=pd.to_datetime(truth["date"]))
    aligned = features[["date", "symbol"]].merge(truth[["date", "symbol", "rank"]], on=["date", "symbol"], how="left")
    return None if aligned["rank"].isna().any() else aligned["rank"].to_numpy(dtype=float)


def train_health_command(args: argparse.Namespace) -> int:
    from trader_ml.training.health import health_artifact, health_train_config, train_health

    features, store = load_table(args, "features")
    config = health_train_config(args.model_type, args.epochs, args.batch_size, args.seed, args.device)
    result = train_health(features, config, truth=health_truth(store, features), progress=not args.quiet)
    print_health_result(result)
    data, metadata = health_artifact(result)
    write_artifact(
        artifact_path(args.output),
        data,
        {**result.metrics, "fit": result.fit.summary(), "metadata": metadata, "history": result.fit.history},
    )
    return 0


def print_health_result(result) -> None:
    from trader_ml.training.metrics import health_table
    from trader_ml.training.pooling import training_rows_text

    window = result.metrics["test_window"]
    if result.skipped_rows:
        print(f"skipped {result.skipped_rows} rows without a known 21-day outcome (the last days or gaps)")
    print(f"test window {window['first_date']} .. {window['last_date']}: {window['days']} days, {window['rows']} rows")
    print(training_rows_text(result.metrics["training_rows"]))
    print(health_table({k: result.metrics[k] for k in ("model", "baseline", "-vol_63d", "drawdown_63d")}))
    print_warnings(result.metrics["warnings"])


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}")
