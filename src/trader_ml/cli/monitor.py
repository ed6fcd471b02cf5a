"""``trader-ml monitor``: is the served model still doing what its backtest promised?"""

from __future__ import annotations

import argparse
import json

from trader_ml.cli.args import add_store_args, open_store_from, parse_date
from trader_ml.errors import StoreError


def add_commands(sub) -> None:
    p = sub.add_parser(
        "monitor",
        help="score the stored answers whose outcomes are now known, and check recent inputs for drift",
    )
    add_store_args(p)
    p.add_argument("--since", type=parse_date, help="only answers from this day on (default: every stored answer)")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON (docs/monitoring.md)")
    p.add_argument(
        "--no-write",
        action="store_true",
        help="do not keep the record in the store (default: it is written to monitoring/latest.json)",
    )
    p.set_defaults(func=cmd_monitor)


def cmd_monitor(args: argparse.Namespace) -> int:
    from trader_ml.monitor.record import live_record, summary_lines, write_record

    store = open_store_from(args)
    record = live_record(store, args.since)
    # Printed first: a write that fails (a full disk) loses the stored copy, never the record.
    if args.json:
        print(json.dumps(record, indent=2, default=float))
    else:
        print("\n".join(summary_lines(record)))
    if not args.no_write:
        try:
            write_record(store, record)
        except StoreError as e:
            raise StoreError(f"the record above was not kept: {e}") from None
    return 0
