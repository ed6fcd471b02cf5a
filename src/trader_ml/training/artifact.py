"""What every exported model says about itself: format, package version, creation time."""

from __future__ import annotations

import datetime as dt

from trader_ml import __version__
from trader_ml.schema import ARTIFACT_FORMAT_VERSION


def artifact_header(kind: str) -> dict:
    return {
        "kind": kind,
        "format_version": ARTIFACT_FORMAT_VERSION,
        "package_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
