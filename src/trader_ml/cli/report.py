"""``trader-ml report``: find a version's training report, fetching it from S3 if need be."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from trader_ml import registry
from trader_ml.cli.args import add_store_args, open_store_from
from trader_ml.errors import NotFoundError, TraderMLError
from trader_ml.store import LocalStore, Store


def add_commands(sub) -> None:
    p = sub.add_parser("report", help="the path of a version's training report (and open it with --open)")
    p.add_argument("version", nargs="?", help="a version (default: the current one, else the newest)")
    p.add_argument("--open", action="store_true", help="open it in the default browser")
    add_store_args(p)
    p.set_defaults(func=cmd_report)


def locate_report(store: Store, version: str | None) -> Path:
    """A local path to the report of ``version`` (default: the current version, else the newest)."""
    if version is None:
        pointer, _ = registry.read_latest(store)
        known = registry.versions(store)
        version = pointer["version"] if pointer else (known[-1] if known else None)
        if version is None:
            raise TraderMLError(f"no model versions in {store.url}: run trader-ml train --store {store.url} first")
    key = registry.report_key(version)
    if isinstance(store, LocalStore):
        path = store.root / key
        if not path.is_file():
            raise TraderMLError(f"no report for version {version}: {path} does not exist")
        return path
    try:
        data = store.read(key)
    except NotFoundError:
        raise TraderMLError(f"no report for version {version}: {store.describe(key)} does not exist") from None
    # A fresh private folder (mode 0700) each time: a predictable path under /tmp could be a
    # link someone planted to make this write over another file.
    path = Path(tempfile.mkdtemp(prefix=f"trader-ml-report-v{version}-")) / "index.html"
    with open(path, "xb") as f:  # x: never an existing file, never through a link
        f.write(data)
    return path


def cmd_report(args: argparse.Namespace) -> int:
    path = locate_report(open_store_from(args), args.version)
    print(path)
    if args.open:
        import webbrowser

        if not webbrowser.open(path.as_uri()):
            print(f"no browser could be opened here; open {path} yourself", file=sys.stderr)
    return 0
