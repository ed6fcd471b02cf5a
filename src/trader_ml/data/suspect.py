"""Suspect days: each new day's prices checked against every series' own recent history.

The bad-tick filter of a market-data desk, on daily closes. A day is suspect when SPY moves
far beyond its recent volatility, when most constituents do so together, when the market and
its constituents disagree, when a series jumps and the next day undoes it, or when a close
sits unchanged for days (a stale feed). A suspect day is stored with its reasons, never
dropped: training leaves it out until the user re-ingests it or accepts it
(``trader-ml validate --accept DAY``), and every answer whose window holds it names it.
The rules and their numbers are in docs/data.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader_ml.errors import NotFoundError, TraderMLError
from trader_ml.schema import SPY, suspect_key
from trader_ml.store import Store
from trader_ml.suspect_marks import Mark, Reason, decode, marks


@dataclass(frozen=True)
class SuspectRules:
    """Fixed before any data was looked at, except ``stale_days`` and the 10-sigma market line,
    set above the worst of 33 years of the S&P 500 and 20 large caps (docs/data.md)."""

    window: int = 63  # trading days of history a day's move is judged against
    min_history: int = 21  # fewer returns than this judge nothing
    vol_floor: float = 0.005  # a daily volatility is never read below 0.5%: a quiet month is not a tick
    market_move: float = 10.0  # SPY beyond this many daily volatilities
    constituent_move: float = 8.0  # a constituent beyond this many of its own ...
    constituent_share: float = 0.5  # ... for at least this share of them, the same way
    min_constituents: int = 5
    lone_move: float = 6.0  # the market (or the median constituent) beyond this ...
    lone_peers: float = 1.0  # ... while the other stays within this
    against_move: float = 4.0  # both beyond this, in opposite directions
    revert_move: float = 10.0  # any series beyond this many volatilities ...
    revert_share: float = 0.75  # ... whose next day undoes at least this share of the move
    stale_days: int = 5  # the same close this many days running ...
    stale_share: float = 0.1  # ... from a series unchanged on at most this share of its recent days


RULES = SuspectRules()


def find(
    closes: pd.DataFrame, constituents: tuple[str, ...], days: pd.DatetimeIndex, rules: SuspectRules = RULES
) -> dict[str, list[Reason]]:
    """Day (``YYYY-MM-DD``) -> why it is suspect, for each of ``days`` that is. ``closes`` are
    trading-day closes (days x tickers) holding the history before the first of ``days``."""
    if closes.empty:
        return {}
    log_closes = np.log(closes.astype(float).where(closes > 0))
    moves = log_closes.diff()
    sigma = moves.rolling(rules.window, min_periods=rules.min_history).std().shift(1).clip(lower=rules.vol_floor)
    z = moves / sigma
    wanted = closes.index.isin(days)
    out: dict[str, list[Reason]] = {}

    def add(i: int, reason: Reason) -> None:
        if wanted[i]:
            out.setdefault(closes.index[i].date().isoformat(), []).append(reason)

    simple = np.expm1(moves.to_numpy(dtype=float))
    zs, sig = z.to_numpy(dtype=float), sigma.to_numpy(dtype=float)
    names = list(closes.columns)
    market = names.index(SPY) if SPY in names else None
    members = [names.index(s) for s in constituents if s in names]
    with np.errstate(invalid="ignore"):
        for i in np.flatnonzero(wanted):
            _market_rules(i, zs, sig, simple, market, members, names, rules, add)
        _revert_rule(zs, simple, names, rules, add)
        _stale_rule(closes, rules, add)
    return out


def _times(z: float, sigma: float) -> str:
    return f"{abs(z):.0f} times its {RULES.window}-day volatility ({sigma:.1%}/day)"


def _market_rules(i, zs, sig, simple, market, members, names, rules, add) -> None:
    zm = zs[i, market] if market is not None else np.nan
    if abs(zm) > rules.market_move:
        add(i, Reason("move", SPY, f"{SPY} return {simple[i, market]:+.1%} is {_times(zm, sig[i, market])}"))
    zc = zs[i, members] if members else np.array([])
    zc = zc[np.isfinite(zc)]
    if len(zc) < rules.min_constituents:
        return
    for sign in (-1, 1):
        together = int(np.sum(sign * zc > rules.constituent_move))
        if together >= rules.constituent_share * len(zc):
            median = float(np.nanmedian(simple[i, members]))
            add(
                i,
                Reason(
                    "constituents",
                    "universe",
                    f"{together} of {len(zc)} symbols moved over {rules.constituent_move:g} times their "
                    f"{rules.window}-day volatility {'down' if sign < 0 else 'up'} (median {median:+.1%})",
                ),
            )
    zmed = float(np.median(zc))
    if not np.isfinite(zm):
        return
    alone = (abs(zm) > rules.lone_move and abs(zmed) < rules.lone_peers) or (
        abs(zmed) > rules.lone_move and abs(zm) < rules.lone_peers
    )
    against = np.sign(zm) != np.sign(zmed) and min(abs(zm), abs(zmed)) > rules.against_move
    if alone or against:
        add(
            i,
            Reason(
                "disagree",
                SPY,
                f"{SPY} moved {zm:+.1f} daily volatilities while the median constituent moved {zmed:+.1f}",
            ),
        )


def _revert_rule(zs, simple, names, rules, add) -> None:
    """A move beyond ``revert_move`` volatilities that the next day undoes: both days named."""
    big = np.abs(zs[:-1]) > rules.revert_move
    with np.errstate(divide="ignore"):
        undone = -np.log1p(simple[1:]) / np.log1p(simple[:-1])
    for i, j in zip(*np.nonzero(big & (undone >= rules.revert_share)), strict=True):
        move = f"{names[j]} moved {simple[i, j]:+.1%} ({abs(zs[i, j]):.0f} daily volatilities)"
        add(i, Reason("revert", names[j], f"{move} and the next day undid {min(undone[i, j], 9.99):.0%} of it"))
        add(
            i + 1,
            Reason("revert", names[j], f"{names[j]} undid {min(undone[i, j], 9.99):.0%} of the day before: {move}"),
        )


def _stale_rule(closes: pd.DataFrame, rules, add) -> None:
    """The same close ``stale_days`` running, from a series whose own recent history moves:
    a thinly traded name that often closes unchanged is judged by that history, not flagged."""
    same = closes.astype(float).diff().eq(0) & closes.notna()
    flags = same.to_numpy()
    run = np.zeros(flags.shape, int)  # days running the close has not changed
    for i in range(1, len(flags)):
        run[i] = np.where(flags[i], run[i - 1] + 1, 0)
    usual = same.astype(float).rolling(rules.window, min_periods=rules.min_history).mean().shift(rules.stale_days)
    hits = (run >= rules.stale_days) & (usual.to_numpy() <= rules.stale_share)
    values = closes.to_numpy(dtype=float)
    for i, j in zip(*np.nonzero(hits), strict=True):
        name = closes.columns[j]
        add(
            i,
            Reason(
                "stale",
                name,
                f"{name} closed at {values[i, j]:.6g} unchanged for {run[i, j]} trading days (a stale feed?)",
            ),
        )


def mark_items(
    store: Store, found: dict[str, list[Reason]], written: list[str], before: str | None = None
) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(marks to write, keys to delete). Each ``written`` day's mark is replaced: a day still
    suspect for the same reasons keeps its acceptance, a day now clean loses its mark. The day
    ``before`` them was not rewritten, so its mark only gains reasons (a jump this run's first
    day undoes); this run's closes cannot clear what is stored for it."""
    checked = [*([before] if before else []), *written]
    old = {m.day: m for m in marks(store, min(checked), max(checked))} if checked else {}
    writes, deletes = [], []
    for day in checked:
        kept = old.get(day)
        reasons = tuple(found.get(day, ()))
        if day == before:
            known = kept.reasons if kept is not None else ()
            reasons = known + tuple(r for r in reasons if r not in known)
            if reasons == known:
                continue
        if not reasons:
            if kept is not None:
                deletes.append(suspect_key(day))
            continue
        accepted = kept.accepted if kept is not None and kept.reasons == reasons else None
        writes.append((suspect_key(day), Mark(day, reasons, accepted).encode()))
    return writes, deletes


def accept(store: Store, days: list[str], now: dt.datetime | None = None) -> list[Mark]:
    """Record the user's acceptance of suspect ``days``; a day that is not suspect is an error."""

    stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    accepted = []
    for day in days:
        try:
            data = store.read(suspect_key(day))
        except NotFoundError:
            raise TraderMLError(f"{day} is not a suspect day in {store.url}: nothing to accept") from None
        mark = decode(day, data, store.describe(suspect_key(day)))
        if mark.reasons and mark.reasons[0].rule == "damaged":
            raise TraderMLError(f"{mark.line()}: it cannot be accepted as it is")
        accepted.append(Mark(day, mark.reasons, stamp))
    store.write_many([(suspect_key(m.day), m.encode()) for m in accepted])
    return accepted


def leave_out(store: Store, frame: pd.DataFrame, log: Callable[[str], None] = print) -> pd.DataFrame:
    """``frame`` without the rows of suspect days the user has not accepted, saying which."""
    if frame.empty:
        return frame
    first, last = (pd.Timestamp(frame["date"].iloc[i]).date().isoformat() for i in (0, -1))
    open_days = [m.day for m in marks(store, first, last) if m.accepted is None]
    if not open_days:
        return frame
    drop = frame["date"].isin(pd.DatetimeIndex(open_days))
    if drop.any():
        shown = ", ".join(open_days[:5]) + (f" and {len(open_days) - 5} more" if len(open_days) > 5 else "")
        log(
            f"left out {len(open_days)} suspect day(s) not accepted: {shown} (re-ingest them, or accept them "
            f"with trader-ml validate --store {store.url} --accept DAY)"
        )
    return frame[~drop.to_numpy()].reset_index(drop=True)
