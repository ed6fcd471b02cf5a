"""The day-to-day commands: ``predict`` a stored day, ``schedule`` the jobs, build the ``lambda-bundle``."""

from __future__ import annotations

import argparse
import sys

from trader_ml.cli.args import DEFAULT_STORE, add_store_args, open_store_from, parse_date, parse_time
from trader_ml.release.bundle import ARCHES, DEFAULT_OUTPUT, RUNTIMES
from trader_ml.schema import CLOSE_SETTLED, TRAIN_TIME


def add_commands(sub) -> None:
    p = sub.add_parser("predict", help="predict a stored day with the current models (the Lambda's answer)")
    add_store_args(p)
    p.add_argument("--date", type=parse_date, help="the day to predict (default: the newest stored day)")
    p.add_argument(
        "--write", action="store_true", help="also write predictions/date=D/ to the store, as the schedule does"
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "daily",
        help="the day's job without a Lambda: ingest the new days, then answer the newest and write it to predictions/",
    )
    from trader_ml.cli.data import add_source_args

    add_source_args(p)
    p.set_defaults(func=cmd_daily)

    p = sub.add_parser("schedule", help="install, remove or show the monthly training / daily ingest job")
    p.add_argument("action", choices=("install", "uninstall", "show"))
    p.add_argument(
        "--job",
        required=True,
        choices=("train", "ingest", "daily"),
        help="train: monthly training; ingest: the daily data; daily: the daily data and the day's answer "
        "(a live record without a Lambda)",
    )
    p.add_argument(
        "--backend",
        choices=("launchd", "systemd", "cron"),  # the one list of them: release.schedule dispatches on these names
        help="what runs the job (default: launchd on macOS, a systemd user timer where available, else cron)",
    )
    p.add_argument("--store", default=DEFAULT_STORE, help="the store the job uses (default: %(default)s)")
    p.add_argument(
        "--time",
        type=parse_time,
        help=f"HH:MM local (default: {TRAIN_TIME:%H:%M} for train; {CLOSE_SETTLED:%H:%M} New York time for ingest)",
    )
    p.epilog = "Options after -- go to the job, e.g. -- --source yahoo,fred,gdelt --symbols AAPL"
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("lambda-bundle", help="build the AWS Lambda zip: serving code, numpy and onnxruntime")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="(default: %(default)s)")
    p.add_argument("--arch", default=next(iter(ARCHES)), choices=tuple(ARCHES), help="(default: %(default)s)")
    p.add_argument("--python", default=RUNTIMES[0], choices=RUNTIMES, help="Lambda runtime (default: %(default)s)")
    p.add_argument("--wheels-dir", help="take the wheels from this folder instead of the package registry")
    p.set_defaults(func=cmd_lambda_bundle)


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from trader_ml.errors import StoreError
    from trader_ml.schema import LATEST_KEY
    from trader_ml.serving.daily import write_predictions
    from trader_ml.serving.handler import daily_answer
    from trader_ml.serving.predictor import Predictor
    from trader_ml.serving.quality import warning_line

    store = open_store_from(args)
    model = Predictor(store)
    answer = daily_answer(model, args.date.isoformat() if args.date else None)
    failed = None
    if args.write:  # the answer is printed whatever becomes of the write (a full disk, a lost S3)
        try:
            answer["written"] = [write_predictions(store, {k: v for k, v in answer.items() if k != "written"})]
        except StoreError as e:
            failed = e
    print(json.dumps(answer, indent=2))
    warning = warning_line(answer)
    if warning:
        print(warning, file=sys.stderr)
    if failed is not None:
        raise StoreError(f"the answer above was not written: {failed}")
    if model.loaded is None and not store.exists(LATEST_KEY):
        print(
            f"note: no trained model in {store.url} yet, so the rule baselines answered; "
            f"train one with trader-ml train --store {store.url}",
            file=sys.stderr,
        )
    return 0


def cmd_daily(args: argparse.Namespace) -> int:
    """Ingest, then answer the newest stored day and write it, as the Lambda's schedule does: the
    live record ``trader-ml monitor`` scores. A day already answered is not answered again."""
    from trader_ml.cli.data import run_ingest
    from trader_ml.errors import StoreError
    from trader_ml.schema import predictions_key
    from trader_ml.serving.daily import write_predictions
    from trader_ml.serving.handler import daily_answer
    from trader_ml.serving.predictor import Predictor
    from trader_ml.serving.quality import warning_line

    report = run_ingest(args)
    print(report.summary())
    for line in report.warnings():
        print(line, file=sys.stderr)
    store = open_store_from(args)
    model = Predictor(store)
    answer = daily_answer(model)
    key = predictions_key(answer["date"])
    if store.exists(key):
        print(f"{answer['date']} was answered already ({store.describe(key)}): nothing new to answer")
        return 0
    try:
        write_predictions(store, {k: v for k, v in answer.items() if k != "written"})
    except StoreError as e:
        raise StoreError(f"the answer for {answer['date']} was not written: {e}") from None
    regime = answer["regime"]
    print(
        f"answered {answer['date']}: {regime['regime_label']} ({regime['model_source']} {regime['model_version']}), "
        f"{len(answer['health'])} symbols; wrote {store.describe(key)}"
    )
    warning = warning_line(answer)
    if warning:
        print(warning, file=sys.stderr)
    return 0  # the refused rows were logged as warnings


def cmd_schedule(args: argparse.Namespace) -> int:
    from trader_ml.release import schedule

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


def cmd_lambda_bundle(args: argparse.Namespace) -> int:
    from trader_ml.release.bundle import build_bundle

    size = build_bundle(args.output, args.arch, args.python, args.wheels_dir)
    print(
        f"wrote {args.output}: {size / 2**20:.1f} MB unzipped (Lambda allows 250 MB), {args.arch}, Python {args.python}"
    )
    print("handler: trader_ml.serving.handler.handler; deploy with deploy/template.yaml (see docs/serving.md)")
    return 0
