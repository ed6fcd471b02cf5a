"""``trader-ml ingest``, ``validate`` and ``export``: data into the store, checked, and out as one file."""

from __future__ import annotations

import argparse
import sys

from trader_ml.cli.args import add_store_args, check_store_exists, open_store_from, parse_date, positive_int
from trader_ml.errors import TraderMLError
from trader_ml.schema import TABLE_PREFIX


def add_commands(sub) -> None:
    _add_ingest(sub)

    p = sub.add_parser("validate", help="check parquet files or a store's partitions against the schema")
    p.add_argument("files", nargs="*", metavar="FILE", help="parquet files to check (default: the store's partitions)")
    p.add_argument(
        "--kind",
        choices=("context", "features"),
        help="what FILE holds (default: features if it has a symbol column, else context)",
    )
    p.add_argument("--max-days", type=positive_int, help="only partitions within N calendar days of the newest")
    p.add_argument(
        "--accept",
        action="append",
        type=parse_date,
        metavar="DAY",
        help="accept a suspect day as it is (a real crash): training then reads it; repeatable",
    )
    add_store_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("export", help="write a stored table as one parquet file (what --data takes)")
    add_store_args(p)
    p.add_argument(
        "--table",
        required=True,
        choices=("context", "features"),
        help="context: one row a day (the regime model's input); features: one row per symbol a day (the health model's)",
    )
    p.add_argument("--out", required=True, help="the parquet file to write (never overwritten)")
    p.add_argument("--start", type=parse_date, help="first day (default: the oldest stored)")
    p.add_argument("--end", type=parse_date, help="last day (default: the newest stored)")
    p.set_defaults(func=cmd_export)


def _add_ingest(sub) -> None:
    p = sub.add_parser("ingest", help="fetch market data, compute features, write partitions to the store")
    add_source_args(p)
    p.set_defaults(func=cmd_ingest)


def add_source_args(p: argparse.ArgumentParser) -> None:
    """What ``ingest`` reads and where it writes (``daily`` takes the same)."""
    from trader_ml.data.sources import SOURCE_NAMES, SourceOptions
    from trader_ml.data.sources.synthetic import MARKETS

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
    p.add_argument("--seed", type=int, default=SourceOptions.seed, help="synthetic: random seed (default: %(default)s)")
    p.add_argument(
        "--n-symbols",
        type=positive_int,
        default=SourceOptions.n_symbols,
        help="synthetic: number of stocks (default: %(default)s)",
    )
    p.add_argument(
        "--market",
        choices=MARKETS,
        default=SourceOptions.market,
        help="synthetic: default (regimes long and easy to read: does a model read them at all?) or "
        "calibrated (fitted to the S&P 500 before 2000: a regime known late is worth what it is on "
        "real history) (default: %(default)s)",
    )
    p.add_argument("--symbols", help="yahoo: comma-separated tickers of the asset universe")
    p.add_argument(
        "--prices",
        action="append",
        metavar="CSV",
        help="csv: a wide price file (Date, then one column per ticker); repeatable",
    )
    p.add_argument("--gdelt-query", help="gdelt: the DOC API query whose tone is averaged")


def cmd_ingest(args: argparse.Namespace) -> int:
    report = run_ingest(args)
    print(report.summary())
    for line in report.warnings():
        print(line, file=sys.stderr)
    return 0


def run_ingest(args: argparse.Namespace):
    """The ingest ``args`` ask for: its report."""
    from trader_ml.data.ingest import ingest
    from trader_ml.data.sources import SourceOptions, make_source

    options = SourceOptions(
        seed=args.seed,
        n_symbols=args.n_symbols,
        market=args.market,
        symbols=tuple(s for s in (args.symbols or "").split(",") if s),
        prices=tuple(args.prices or ()),
        gdelt_query=args.gdelt_query,
    )
    return ingest(make_source(args.source, options), open_store_from(args, must_exist=False), args.start, args.end)


def cmd_validate(args: argparse.Namespace) -> int:
    from trader_ml.data.partitions import read_file, read_table

    if args.files:
        for path in args.files:
            kind = args.kind or detect_kind(path)
            frame = read_file(path, kind)
            print(f"{path}: ok, {len(frame)} {kind} rows")
        return 0
    from trader_ml.data import suspect

    store = open_store_from(args)
    check_store_exists(store)
    if args.accept:
        for mark in suspect.accept(store, sorted({d.isoformat() for d in args.accept})):
            print(f"accepted {mark.line()}")
    check_days_complete(store)
    first = None
    for table in ("context", "features"):
        frame = read_table(store, table, max_days=args.max_days)
        if frame.empty:
            raise TraderMLError(
                f"{store.describe(TABLE_PREFIX[table])} holds no {table} partitions: "
                f"ingest some first, e.g. trader-ml ingest --source sample --store {store.url}"
            )
        first = first or frame["date"].iloc[0].date().isoformat()
        print(f"{store.url} {table}: ok, {len(frame)} rows over {frame['date'].nunique()} days")
    days = check_daily_json(store, first)
    print(f"{store.url} daily JSON: ok, {days} days")
    return report_suspect(store, first)


def check_daily_json(store, first: str | None) -> int:
    """Every day's JSON view (what serving reads) parses as the object it should be."""
    from trader_ml import safejson
    from trader_ml.schema import daily_key
    from trader_ml.serving.daily import stored_days

    days = [d for d in stored_days(store) if first is None or d >= first]
    for name, required in (("context.json", ("date",)), ("features.json", ("date", "rows"))):
        keys = [daily_key(d, name) for d in days]
        for day, key, data in zip(days, keys, store.read_many(keys), strict=True):
            try:
                doc = safejson.loads_object(data, store.describe(key), required)
            except safejson.DamagedJSON as e:
                raise TraderMLError(
                    f"{e}; re-ingest the day: trader-ml ingest --store {store.url} --start {day} --end {day}"
                ) from None
            if doc["date"] != day or (name == "features.json" and not isinstance(doc["rows"], list)):
                raise TraderMLError(
                    f"{store.describe(key)}: not the {name} of {day} (damaged); re-ingest the day: "
                    f"trader-ml ingest --store {store.url} --start {day} --end {day}"
                )
    return len(days)


def report_suspect(store, first: str | None) -> int:
    """One line per suspect day; exit 1 while any is neither repaired nor accepted."""
    from trader_ml.data import suspect
    from trader_ml.serving.daily import stored_days

    marks = suspect.marks(store, first)
    open_marks = [m for m in marks if m.accepted is None]
    newest = (stored_days(store) or ["NEWEST"])[-1]
    for mark in marks:
        status = f"accepted {mark.accepted}" if mark.accepted else "not accepted"
        print(f"suspect day {mark.line()} ({status})", file=sys.stdout if mark.accepted else sys.stderr)
    if open_marks:
        print(
            f"{len(open_marks)} suspect day(s) not accepted: training leaves them out. Re-ingest from the day with "
            f"good prices through the newest (trader-ml ingest --store {store.url} --start DAY --end {newest}), "
            f"or accept it as it is, a real move (trader-ml validate --store {store.url} --accept DAY)",
            file=sys.stderr,
        )
        return 1
    return 0


def detect_kind(path: str) -> str:
    """``features`` when the file has a ``symbol`` column, else ``context``."""
    from trader_ml.data.partitions import file_columns

    return "features" if "symbol" in file_columns(path) else "context"


def check_days_complete(store) -> None:
    """Every stored day whole: a cut-off ingest leaves days that the next ingest must redo."""
    from trader_ml.data import completeness

    state = completeness.check(store)
    if state.incomplete:
        day = state.oldest_incomplete
        raise TraderMLError(
            f"{store.url}: {len(state.incomplete)} incomplete day(s) from {day} on ({day}: {state.incomplete[day]}); "
            f"run trader-ml ingest --store {store.url} again to complete them"
        )


def cmd_export(args: argparse.Namespace) -> int:
    """One parquet file of a stored table: what the training guide's --data takes."""
    from pathlib import Path

    from trader_ml.data.partitions import read_table
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
