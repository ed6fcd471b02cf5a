"""Suspect days as a store holds them (``data/suspect/date=D/suspect.json``): why each is
suspect and whether the user accepted it. Standard library only: serving reads them too."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from trader_ml import safejson
from trader_ml.schema import SUSPECT_FILE, SUSPECT_PREFIX, is_day, suspect_key
from trader_ml.store import Store


@dataclass(frozen=True)
class Reason:
    rule: str  # move, constituents, disagree, revert, stale
    symbol: str  # the series it concerns ("universe" for the constituents together)
    text: str


@dataclass(frozen=True)
class Mark:
    day: str
    reasons: tuple[Reason, ...]
    accepted: str | None  # when the user accepted the day as it is (ISO time), else None

    def line(self) -> str:
        return f"{self.day}: " + "; ".join(r.text for r in self.reasons)

    def encode(self) -> bytes:
        return json.dumps(
            {"date": self.day, "reasons": [asdict(r) for r in self.reasons], "accepted": self.accepted}, indent=1
        ).encode()


def decode(day: str, data: bytes, where: str) -> Mark:
    """A damaged mark still marks its day: it is read as suspect for an unknown reason."""
    try:
        doc = safejson.loads_object(data, where, ("reasons",))
        reasons = tuple(Reason(str(r["rule"]), str(r["symbol"]), str(r["text"])) for r in doc["reasons"])
        accepted = doc.get("accepted")
        return Mark(day, reasons, accepted if isinstance(accepted, str) else None)
    except (safejson.DamagedJSON, KeyError, TypeError):
        return Mark(day, (Reason("damaged", "", f"its mark {where} is damaged; re-ingest the day"),), None)


def _day_of(key: str) -> str | None:
    """The day a mark's key names; None for anything else under the prefix."""
    day = key[len(SUSPECT_PREFIX) :].removeprefix("date=").removesuffix(f"/{SUSPECT_FILE}")
    return day if is_day(day) and key == suspect_key(day) else None


def marks(store: Store, first: str | None = None, last: str | None = None) -> list[Mark]:
    """The store's suspect days (ascending), accepted or not, within [first, last]."""
    days = sorted(
        d
        for d in (_day_of(k) for k in store.list(SUSPECT_PREFIX))
        if d and (first is None or d >= first) and (last is None or d <= last)
    )
    keys = [suspect_key(d) for d in days]
    return [decode(d, b, store.describe(k)) for d, k, b in zip(days, keys, store.read_many(keys), strict=True)]
