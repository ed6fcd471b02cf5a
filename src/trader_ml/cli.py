"""The ``trader-ml`` command: one subcommand per stage, each a thin layer over the package."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence

from trader_ml import __version__
from trader_ml.errors import TraderMLError
from trader_ml.schema import TABLE_PREFIX

DEFAULT_STORE = "./store"


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


def add_store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=DEFAULT_STORE, help="local directory or s3://bucket/prefix (default: %(default)s)"
    )
    parser.add_argument("--region", help="AWS region of an S3 store (default: boto3's chain)")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)")


def open_store_from(args: argparse.Namespace):
    from trader_ml.store import open_store

    return open_store(args.store, region=args.region, endpoint_url=args.endpoint_url)


def cmd_ingest(args: argparse.Namespace) -> int:
    from trader_ml.pipeline import ingest
    from trader_ml.sources import SourceOptions, make_source

    options = SourceOptions(
        seed=args.seed,
        n_symbols=args.n_symbols,
        symbols=tuple(s for s in (args.symbols or "").split(",") if s),
        prices=tuple(args.prices or ()),
        gdelt_query=args.gdelt_query,
    )
    report = ingest(make_source(args.source, options), open_store_from(args), args.start, args.end)
    print(report.summary())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from trader_ml.partitions import read_file, read_table

    if args.files:
        for path in args.files:
            kind = args.kind or detect_kind(path)
            frame = read_file(path, kind)
            print(f"{path}: ok, {len(frame)} {kind} rows")
        return 0
    store = open_store_from(args)
    check_store_exists(store)
    check_days_complete(store)
    for table in ("context", "features"):
        frame = read_table(store, table, max_days=args.max_days)
        if frame.empty:
            raise TraderMLError(
                f"{store.describe(TABLE_PREFIX[table])} holds no {table} partitions: "
                f"ingest some first, e.g. trader-ml ingest --source sample --store {store.url}"
            )
        print(f"{store.url} {table}: ok, {len(frame)} rows over {frame['date'].nunique()} days")
    return 0


def detect_kind(path: str) -> str:
    """``features`` when the file has a ``symbol`` column, else ``context``."""
    from trader_ml.partitions import file_columns

    return "features" if "symbol" in file_columns(path) else "context"


def check_days_complete(store) -> None:
    """Every stored day whole: a cut-off ingest leaves days that the next ingest must redo."""
    from trader_ml import completeness

    state = completeness.check(store)
    if state.incomplete:
        day = state.oldest_incomplete
        raise TraderMLError(
            f"{store.url}: {len(state.incomplete)} incomplete day(s) from {day} on ({day}: {state.incomplete[day]}); "
            f"run trader-ml ingest --store {store.url} again to complete them"
        )


def check_store_exists(store) -> None:
    from trader_ml.store import LocalStore

    if isinstance(store, LocalStore) and not store.root.is_dir():
        raise TraderMLError(f"no store at {store.root}: the folder does not exist (check --store)")


def add_window_args(parser: argparse.ArgumentParser) -> None:
    """Which stored days a training run reads: what a backtest refit uses to train as of a date."""
    parser.add_argument("--start", type=parse_date, help="read only days from this date on")
    parser.add_argument("--end", type=parse_date, help="read only days up to this date (inclusive)")
    parser.add_argument(
        "--until", type=parse_date, help="train on rows strictly before this date (what was known the day before)"
    )


def cmd_export(args: argparse.Namespace) -> int:
    """One parquet file of a stored table: what the training guide's --data takes."""
    from pathlib import Path

    from trader_ml.partitions import read_table
    from trader_ml.store import LocalStore

    out = Path(args.out).expanduser().absolute()
    if out.exists():
        raise TraderMLError(f"{out} exists already: choose another --out or remove it first")
    store = open_store_from(args)
    check_store_exists(store)
    frame = read_table(store, args.table, start=args.start, end=args.end)
    if frame.empty:
        raise TraderMLError(f"{store.describe(TABLE_PREFIX[args.table])}: no {args.table} rows in that window")
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    LocalStore(out.parent).write(out.name, buffer.getvalue())
    first, last = frame["date"].min().date(), frame["date"].max().date()
    print(f"wrote {out}: {len(frame)} {args.table} rows, {first} .. {last}")
    return 0


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
    parser.add_argument("--epochs", type=positive_int, default=100, help="maximum epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help="batch size (default: %(default)s)")
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="(default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_train_regime(args: argparse.Namespace) -> int:
    from trader_ml.training.commands import train_regime_command

    return train_regime_command(args)


def cmd_train_health(args: argparse.Namespace) -> int:
    from trader_ml.training.commands import train_health_command

    return train_health_command(args)


def cmd_train(args: argparse.Namespace) -> int:
    if args.first_trading_day_only:
        from trader_ml.schedule import is_first_trading_day

        if not is_first_trading_day(dt.date.today()):
            print(f"{dt.date.today()} is not the first trading day of the month: nothing to do")
            return 0
    from trader_ml.training.orchestrate import TrainOptions, run_training

    store = args.store or (f"s3://{args.bucket}" if args.bucket else DEFAULT_STORE)
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
        progress=not args.quiet,
    )
    run_training(options)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from trader_ml.backtest import BacktestConfig, run_backtest
    from trader_ml.backtest.summary import summary_text

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
    store = open_store_from(args)
    result = run_backtest(config, store, data=args.data, progress=not args.quiet)
    print(summary_text(result.summary))
    print(f"results: {store.describe(result.key)} (index.html, summary.json, predictions.parquet)")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from trader_ml import schedule

    home = schedule.home_dir()
    backend = args.backend or schedule.default_backend()
    if args.action == "uninstall":
        schedule.uninstall(args.job, backend, home)
        return 0
    extra = args.extra
    job = schedule.make_job(args.job, args.store, extra, args.time, home)
    if args.action == "show":
        print(schedule.describe(job, backend, home))
    else:
        schedule.install(job, backend, home)
    return 0


def parse_time(text: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: expected HH:MM") from None


def cmd_models(args: argparse.Namespace) -> int:
    from trader_ml import registry_commands

    return registry_commands.run(args, open_store_from(args))


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from trader_ml.serving.handler import daily_answer
    from trader_ml.serving.predictor import Predictor

    model = Predictor.from_store(args.store, region=args.region, endpoint_url=args.endpoint_url)
    answer = daily_answer(model, args.date.isoformat() if args.date else None, write=args.write)
    print(json.dumps(answer, indent=2))
    return 0


def cmd_lambda_bundle(args: argparse.Namespace) -> int:
    from trader_ml.bundle import build_bundle

    size = build_bundle(args.output, args.arch, args.python, args.wheels_dir)
    print(
        f"wrote {args.output}: {size / 2**20:.1f} MB unzipped (Lambda allows 250 MB), {args.arch}, Python {args.python}"
    )
    print("handler: trader_ml.serving.handler.handler; deploy with deploy/template.yaml (see docs/serving.md)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from trader_ml.report_command import locate_report

    path = locate_report(open_store_from(args), args.version)
    print(path)
    if args.open:
        import webbrowser

        if not webbrowser.open(path.as_uri()):
            print(f"no browser could be opened here; open {path} yourself", file=sys.stderr)
    return 0


def build_parser(
    script: dict[str, str] | None = None, defaults: dict[str, dict[str, object]] | None = None
) -> argparse.ArgumentParser:
    """The command line. A wrapper script that runs one subcommand names it and its own
    defaults (``script={"train": "training/train.py"}``, ``defaults={"train": {...}}``), so that
    command's help and errors speak of the script and show the defaults it really uses."""
    from trader_ml.sources import SOURCE_NAMES

    # allow_abbrev=False everywhere: a typo such as --max-day must fail, not become --max-days.
    parser = argparse.ArgumentParser(
        prog=next(iter(script.values())) if script else "trader-ml",
        description="Train, version and serve regime and health models.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"trader-ml {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    made: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        prog = (script or {}).get(name)
        kwargs.setdefault("description", kwargs.get("help"))  # the command's own --help says what it is
        made[name] = commands.add_parser(name, allow_abbrev=False, **({"prog": prog} if prog else {}), **kwargs)
        return made[name]

    sub = argparse.Namespace(add_parser=command)

    p = sub.add_parser("ingest", help="fetch market data, compute features, write partitions to the store")
    p.add_argument(
        "--source",
        default="sample",
        help=f"one of {', '.join(SOURCE_NAMES)}, or several joined by commas (default: %(default)s)",
    )
    add_store_args(p)
    p.add_argument(
        "--start",
        type=parse_date,
        help="first day (default: the day after the newest stored day, or the source's first)",
    )
    p.add_argument("--end", type=parse_date, help="last day (default: the newest day the source has)")
    p.add_argument("--seed", type=int, default=0, help="synthetic: random seed (default: %(default)s)")
    p.add_argument(
        "--n-symbols", type=positive_int, default=50, help="synthetic: number of stocks (default: %(default)s)"
    )
    p.add_argument("--symbols", help="yahoo: comma-separated tickers of the asset universe")
    p.add_argument(
        "--prices",
        action="append",
        metavar="CSV",
        help="csv: a wide price file (Date, then one column per ticker); repeatable",
    )
    p.add_argument("--gdelt-query", help="gdelt: the DOC API query whose tone is averaged")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("validate", help="check parquet files or a store's partitions against the schema")
    p.add_argument("files", nargs="*", metavar="FILE", help="parquet files to check (default: the store's partitions)")
    p.add_argument(
        "--kind",
        choices=("context", "features"),
        help="what FILE holds (default: features if it has a symbol column, else context)",
    )
    p.add_argument("--max-days", type=positive_int, help="only partitions within N calendar days of the newest")
    add_store_args(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("train-regime", help="train the regime model alone (the training guide's train_regime.py)")
    add_training_args(p, "regime", batch_size=32)
    p.add_argument("--model-type", default="gru", choices=("gru", "transformer"), help="(default: %(default)s)")
    p.add_argument(
        "--layers", type=positive_int, help="recurrent or encoder layers (default: 1 for gru, 2 for transformer)"
    )
    p.add_argument(
        "--label-horizon", type=positive_int, default=10, help="trading days a label looks ahead (default: %(default)s)"
    )
    p.set_defaults(func=cmd_train_regime)

    p = sub.add_parser("train-health", help="train the health model alone (the training guide's train_health.py)")
    add_training_args(p, "health", batch_size=64)
    p.add_argument("--model-type", default="autoencoder", choices=("autoencoder", "vae"), help="(default: %(default)s)")
    p.set_defaults(func=cmd_train_health)

    p = sub.add_parser("train", help="train, judge, export and register both models (the training guide's train.py)")
    p.add_argument("--store", help=f"local directory or s3://bucket/prefix (default: {DEFAULT_STORE}, or s3://BUCKET)")
    wrapper = (defaults or {}).get("train", {})
    p.add_argument("--bucket", help=f"S3 bucket: the store is s3://BUCKET (default: {wrapper.get('bucket', 'none')})")
    region_default = wrapper.get("region", "boto3's chain")
    p.add_argument("--region", help=f"AWS region (default: {region_default})")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)")
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
    p.add_argument("--regime-type", default="gru", choices=("gru", "transformer"), help="(default: %(default)s)")
    p.add_argument(
        "--health-type", default="autoencoder", choices=("autoencoder", "vae"), help="(default: %(default)s)"
    )
    p.add_argument("--epochs", type=positive_int, default=100, help="maximum epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, help="batch size of both models (default: 32 regime, 64 health)")
    p.add_argument("--skip-upload", action="store_true", help="write only to --output-dir, nothing to the store")
    p.add_argument("--output-dir", default="/tmp/models", help="local output directory (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="promote even if the gate says no")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        help="how much worse than the champion still passes (default: %(default)s)",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--first-trading-day-only",
        action="store_true",
        help="do nothing unless today is the month's first trading day (used by the schedule)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="write a stored table as one parquet file (what --data takes)")
    add_store_args(p)
    p.add_argument("--table", required=True, choices=("context", "features"))
    p.add_argument("--out", required=True, help="the parquet file to write (never overwritten)")
    p.add_argument("--start", type=parse_date, help="first day (default: the oldest stored)")
    p.add_argument("--end", type=parse_date, help="last day (default: the newest stored)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("backtest", help="walk-forward backtest of a model next to the rules, an HMM, a jump model")
    p.add_argument("--data", help="a context or features parquet file (default: the store's table)")
    add_store_args(p)
    p.add_argument("--model", default="regime", choices=("regime", "health"), help="(default: %(default)s)")
    p.add_argument(
        "--model-type",
        choices=("gru", "transformer", "autoencoder", "vae"),
        help="(default: gru for regime, autoencoder for health)",
    )
    p.add_argument("--start", type=parse_date, help="first test day (default: the first refit 5 years into the data)")
    p.add_argument("--end", type=parse_date, help="last test day (default: the newest day)")
    p.add_argument(
        "--refit", default="yearly", choices=("yearly", "quarterly", "monthly"), help="(default: %(default)s)"
    )
    p.add_argument(
        "--window-days", type=positive_int, help="train on the last N calendar days only (default: all earlier days)"
    )
    p.add_argument("--epochs", type=positive_int, default=100, help="maximum epochs per refit (default: %(default)s)")
    p.add_argument("--seeds", type=positive_int, default=1, help="seeds per refit, one row each (default: %(default)s)")
    p.add_argument(
        "--cost-bp",
        type=float,
        default=10.0,
        help="cost per unit of exposure changed, basis points (default: %(default)s)",
    )
    p.add_argument("--workers", type=positive_int, help="parallel refit processes (default: one per core)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the refits on this Ray cluster (needs the cluster extra)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("schedule", help="install, remove or show the monthly training / daily ingest job")
    p.add_argument("action", choices=("install", "uninstall", "show"))
    p.add_argument("--job", required=True, choices=("train", "ingest"))
    p.add_argument(
        "--backend",
        choices=("launchd", "systemd", "cron"),
        help="(default: launchd on macOS, a systemd user timer where available, else cron)",
    )
    p.add_argument("--store", default=DEFAULT_STORE, help="the store the job uses (default: %(default)s)")
    p.add_argument(
        "--time", type=parse_time, help="HH:MM local (default: 07:00 for train; 16:30 New York time for ingest)"
    )
    p.epilog = "Options after -- go to the job, e.g. -- --source yahoo,fred,gdelt --symbols AAPL"
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("models", help="list, show, promote or roll back model versions")
    p.add_argument("action", choices=("list", "show", "promote", "rollback"))
    p.add_argument("version", nargs="?", help="for show and promote: a version such as 20260130 or 20260130-2")
    p.add_argument(
        "--model",
        choices=("regime", "health"),
        help="for promote: make only this model of the version current; the other stays as it is (default: both)",
    )
    add_store_args(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("report", help="the path of a version's training report (and open it with --open)")
    p.add_argument("version", nargs="?", help="a version (default: the current one, else the newest)")
    p.add_argument("--open", action="store_true", help="open it in the default browser")
    add_store_args(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("predict", help="predict a stored day with the current models (the Lambda's answer)")
    add_store_args(p)
    p.add_argument("--date", type=parse_date, help="the day to predict (default: the newest stored day)")
    p.add_argument(
        "--write", action="store_true", help="also write predictions/date=D/ to the store, as the schedule does"
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("lambda-bundle", help="build the AWS Lambda zip: serving code, numpy and onnxruntime")
    p.add_argument("--output", default="build/lambda.zip", help="(default: %(default)s)")
    p.add_argument("--arch", default="x86_64", choices=("x86_64", "arm64"), help="(default: %(default)s)")
    p.add_argument(
        "--python", default="3.11", choices=("3.11", "3.12", "3.13"), help="Lambda runtime (default: %(default)s)"
    )
    p.add_argument("--wheels-dir", help="take the wheels from this folder instead of the package registry")
    p.set_defaults(func=cmd_lambda_bundle)
    for name, values in (defaults or {}).items():
        made[name].set_defaults(**values)  # after add_argument: help's %(default)s shows these
    return parser


def missing_module_message(error: ModuleNotFoundError) -> str:
    if error.name in ("torch", "onnx", "sklearn", "tqdm", "matplotlib", "scipy"):
        return f"No module named '{error.name}': training needs the train extra: pip install 'trader-ml[train]'"
    if error.name in ("boto3", "botocore"):
        return f"No module named '{error.name}': S3 stores need the aws extra: pip install 'trader-ml[aws]'"
    raise error


def main(
    argv: Sequence[str] | None = None, script: str | None = None, defaults: dict[str, object] | None = None
) -> int:
    """Run a command. A wrapper script passes its own name (``script``) and defaults, which its
    command's help then shows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []  # options for a scheduled job
    named = script and argv
    parser = build_parser({argv[0]: script} if named else None, {argv[0]: defaults or {}} if named else None)
    args = parser.parse_args(argv[: len(argv) - len(extra) - (1 if extra or "--" in argv else 0)])
    args.extra = extra
    try:
        return args.func(args)
    except TraderMLError as e:
        print(f"{script or f'trader-ml {args.command}'}: error: {e}", file=sys.stderr)
        return e.exit_code
    except ModuleNotFoundError as e:
        print(f"trader-ml {args.command}: error: {missing_module_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
