"""What every command shares: the store flags, dates and positive numbers, the training window."""

from __future__ import annotations

import argparse
import datetime as dt

from trader_ml.errors import TraderMLError
from trader_ml.training.options import TrainOptions

DEFAULT_STORE = TrainOptions.store


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: expected YYYY-MM-DD") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def parse_time(text: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: expected HH:MM") from None


def add_store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=DEFAULT_STORE, help="local directory or s3://bucket/prefix (default: %(default)s)"
    )
    parser.add_argument("--region", help="AWS region of an S3 store (default: boto3's chain)")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)")


def open_store_from(args: argparse.Namespace, must_exist: bool = True):
    """The store ``--store`` names; a local one must exist unless the command creates it (ingest):
    a typo in the path is one clear error, never an empty store."""
    from trader_ml.store import open_store

    store = open_store(args.store, region=args.region, endpoint_url=args.endpoint_url)
    if must_exist:
        check_store_exists(store)
    return store


def check_store_exists(store) -> None:
    from trader_ml.store import LocalStore

    if isinstance(store, LocalStore) and not store.root.is_dir():
        raise TraderMLError(
            f"no store at {store.root}: the folder does not exist (check --store; "
            f"trader-ml ingest --store {store.root} creates one)"
        )


def add_window_args(parser: argparse.ArgumentParser) -> None:
    """Which stored days a training run reads: what a backtest refit uses to train as of a date."""
    parser.add_argument("--start", type=parse_date, help="read only days from this date on")
    parser.add_argument("--end", type=parse_date, help="read only days up to this date (inclusive)")
    parser.add_argument(
        "--until", type=parse_date, help="train on rows strictly before this date (what was known the day before)"
    )
