"""``trader-ml train`` (the monthly release) and the single-model ``train-regime`` / ``train-health``
(the training guide's train.py, train_regime.py and train_health.py).

The data, training and release modules are imported when a command runs, not when the parser
is built: ``trader-ml --help`` and the serving commands never load pandas or torch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from trader_ml.cli.args import DEFAULT_STORE, add_store_args, add_window_args, check_store_exists, positive_int
from trader_ml.errors import TraderMLError
from trader_ml.schema import HEALTH_TYPES, REGIME_LAYERS, REGIME_TYPES, TABLE_PREFIX
from trader_ml.store import LocalStore, Store, open_store
from trader_ml.training.options import DEVICES, TrainOptions

if TYPE_CHECKING:
    import pandas as pd


def add_commands(sub, wrapper: dict) -> None:
    """``wrapper``: the defaults a wrapper script (training/train.py) gives ``train``, for its help."""
    p = sub.add_parser("train-regime", help="train the regime model alone (the training guide's train_regime.py)")
    add_training_args(p, "regime", batch_size=TrainOptions.regime_batch_size)
    _network_arg(p, "--model-type", "regime")
    p.add_argument(
        "--layers",
        type=positive_int,
        help="recurrent or encoder layers (default: "
        + ", ".join(f"{n} for {kind}" for kind, n in REGIME_LAYERS.items())
        + ")",
    )
    p.add_argument(
        "--label-horizon",
        type=positive_int,
        default=TrainOptions.regime_label_horizon,
        help="trading days a label looks ahead (default: %(default)s)",
    )
    p.set_defaults(func=train_regime_command)

    p = sub.add_parser("train-health", help="train the health model alone (the training guide's train_health.py)")
    add_training_args(p, "health", batch_size=TrainOptions.health_batch_size)
    _network_arg(p, "--model-type", "health")
    p.set_defaults(func=train_health_command)

    p = sub.add_parser("train", help="train, judge, export and register both models (the training guide's train.py)")
    _add_train_store_args(p, wrapper)
    _add_train_model_args(p)
    p.add_argument("--skip-upload", action="store_true", help="write only to --output-dir, nothing to the store")
    p.add_argument(
        "--output-dir", default=TrainOptions.output_dir, help="local output directory (default: %(default)s)"
    )
    p.add_argument("--force", action="store_true", help="promote even if the gate says no")
    p.add_argument(
        "--tolerance",
        type=float,
        default=TrainOptions.tolerance,
        help="how much worse than the champion still passes (default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--first-trading-day-only",
        action="store_true",
        help="do nothing unless today is the month's first trading day (used by the schedule)",
    )
    p.set_defaults(func=cmd_train)


NETWORK_HELP = {
    "regime": "the regime network: a GRU or a causal Transformer (default: %(default)s)",
    "health": "the health network: an autoencoder or a variational one (default: %(default)s)",
}


def _network_arg(parser: argparse.ArgumentParser, flag: str, kind: str) -> None:
    default, choices = (
        (TrainOptions.regime_type, REGIME_TYPES) if kind == "regime" else (TrainOptions.health_type, HEALTH_TYPES)
    )
    parser.add_argument(flag, default=default, choices=choices, help=NETWORK_HELP[kind])


def _add_train_store_args(p: argparse.ArgumentParser, wrapper: dict) -> None:
    """Where ``train`` reads and publishes, with the wrapper script's own defaults in the help."""
    store_default = (
        f"s3://{wrapper['bucket']}" if "bucket" in wrapper else f"{DEFAULT_STORE}, or s3://BUCKET with --bucket"
    )
    p.add_argument("--store", help=f"local directory or s3://bucket/prefix (default: {store_default})")
    p.add_argument("--bucket", help=f"S3 bucket: the store is s3://BUCKET (default: {wrapper.get('bucket', 'none')})")
    region_default = wrapper.get("region", "boto3's chain")
    p.add_argument("--region", help=f"AWS region (default: {region_default})")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)")


def _add_train_model_args(p: argparse.ArgumentParser) -> None:
    """What ``train`` trains on and how: windows of history, networks, epochs, device, seed."""
    p.add_argument(
        "--max-days",
        type=positive_int,
        help="days of features history the health model uses (default: all stored; the guide's was 365)",
    )
    p.add_argument(
        "--regime-max-days",
        type=positive_int,
        help="days of context history the regime model uses (default: all stored)",
    )
    add_window_args(p)
    _network_arg(p, "--regime-type", "regime")
    _network_arg(p, "--health-type", "health")
    p.add_argument(
        "--epochs", type=positive_int, default=TrainOptions.epochs, help="maximum epochs (default: %(default)s)"
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help=f"batch size of both models (default: {TrainOptions.regime_batch_size} regime, {TrainOptions.health_batch_size} health)",
    )
    p.add_argument(
        "--device",
        default=TrainOptions.device,
        choices=DEVICES,
        help="where to train: auto takes CUDA or Apple's MPS when present, else the CPU (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=TrainOptions.seed, help="random seed (default: %(default)s)")
    p.add_argument(
        "--regime-label-horizon",
        type=positive_int,
        default=TrainOptions.regime_label_horizon,
        help="trading days the regime labels look ahead (default: %(default)s)",
    )


def add_training_args(parser: argparse.ArgumentParser, kind: str, batch_size: int) -> None:
    """The training guide's single-model flags, shared by train-regime and train-health."""
    table = "context" if kind == "regime" else "features"
    parser.add_argument("--data", help=f"path to a {table} parquet file (or read the store: --store, --max-days)")
    add_store_args(parser)
    parser.add_argument("--max-days", type=positive_int, help="with --store: only the last N calendar days")
    add_window_args(parser)
    parser.add_argument(
        "--output", default=f"models/{kind}_model.pkl", help="output path; .pkl becomes .onnx (default: %(default)s)"
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=TrainOptions.epochs, help="maximum epochs (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help="batch size (default: %(default)s)")
    parser.add_argument(
        "--device",
        default=TrainOptions.device,
        choices=DEVICES,
        help="where to train: auto takes CUDA or Apple's MPS when present, else the CPU (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=TrainOptions.seed, help="random seed (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_train(args: argparse.Namespace) -> int:
    if args.first_trading_day_only:
        from trader_ml.release.schedule import is_first_trading_day

        if not is_first_trading_day(dt.date.today()):
            print(f"{dt.date.today()} is not the first trading day of the month: nothing to do")
            return 0
    from trader_ml.release.job import run_training

    store = args.store or (f"s3://{args.bucket}" if args.bucket else DEFAULT_STORE)
    check_store_exists(open_store(store, region=args.region, endpoint_url=args.endpoint_url))
    options = TrainOptions(
        store=store,
        region=args.region,
        endpoint_url=args.endpoint_url,
        max_days=args.max_days,
        regime_max_days=args.regime_max_days,
        start=args.start,
        end=args.end,
        until=args.until,
        regime_type=args.regime_type,
        health_type=args.health_type,
        epochs=args.epochs,
        regime_batch_size=args.batch_size or TrainOptions.regime_batch_size,
        health_batch_size=args.batch_size or TrainOptions.health_batch_size,
        skip_upload=args.skip_upload,
        output_dir=args.output_dir,
        force=args.force,
        tolerance=args.tolerance,
        device=args.device,
        seed=args.seed,
        regime_label_horizon=args.regime_label_horizon,
        progress=not args.quiet,
    )
    run_training(options)
    return 0


def window_text(args: argparse.Namespace) -> str:
    parts = [f"from {args.start}" if args.start else "", f"to {args.end}" if args.end else ""]
    parts.append(f"before {args.until}" if args.until else "")
    return " ".join(p for p in parts if p)


def load_table(args: argparse.Namespace, table: str) -> tuple[pd.DataFrame, Store | None]:
    """The training table from ``--data FILE`` or from ``--store URL`` (last ``--max-days``),
    limited to ``--start`` .. ``--end`` and to days strictly before ``--until``."""
    from trader_ml.data import suspect
    from trader_ml.data.partitions import date_window, last_day_before, no_data_message, read_file, read_table

    if args.start and args.end and args.start > args.end:
        raise TraderMLError(f"--start {args.start} is after --end {args.end}")
    if args.data:
        frame, store = date_window(read_file(args.data, table), args.start, args.end, args.until), None
        if frame.empty:
            raise TraderMLError(f"{args.data}: no rows {window_text(args)}")
        return frame, store
    store = open_store(args.store, region=args.region, endpoint_url=args.endpoint_url)
    check_store_exists(store)
    frame = read_table(store, table, args.max_days, args.start, last_day_before(args.end, args.until))
    frame = suspect.leave_out(store, frame)
    if frame.empty:
        if args.start or args.end or args.until:
            raise TraderMLError(f"{store.describe(TABLE_PREFIX[table])}: no {table} rows {window_text(args)}")
        raise TraderMLError(no_data_message(store, table))
    return frame, store


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

    from trader_ml.data.truth import regime_truth

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


def train_health_command(args: argparse.Namespace) -> int:
    from trader_ml.data.truth import health_truth
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
    from trader_ml.training.health_references import REFERENCES

    names = ("model", *REFERENCES, "baseline", "-vol_63d", "drawdown_63d")
    print(health_table({k: result.metrics[k] for k in names if k in result.metrics}))
    print_warnings(result.metrics["warnings"])


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}")
