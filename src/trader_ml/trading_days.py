"""Trading days of the New York Stock Exchange, from ``exchange_calendars``' XNYS calendar.

The monitor counts how many sessions the store is behind, and the monthly job runs on the
month's first session: both need the exchange's holidays (Thanksgiving, Good Friday, a Monday
New Year), which a weekday count does not know. The calendar is built once, lazily, for
1886-2200 (about a second the first time); a day outside those years is counted by weekdays.
"""

from __future__ import annotations

import datetime as dt
import warnings
from functools import lru_cache

import numpy as np

EXCHANGE = "XNYS"
FIRST_YEAR, LAST_YEAR = (
    1887,
    2199,
)  # the calendar is built a year wider, so every day asked about has a session on each side


@lru_cache(maxsize=1)
def _calendar():
    import exchange_calendars  # about 0.8 s to import, 0.2 s to build: paid by the monitor and the schedule only

    with warnings.catch_warnings():
        # exchange_calendars builds its holidays with a pandas idiom pandas 3.1 deprecates: its
        # concern, not the user's, and the sessions are the same.
        warnings.simplefilter("ignore", DeprecationWarning)
        return exchange_calendars.get_calendar(EXCHANGE, start=f"{FIRST_YEAR - 1}-01-01", end=f"{LAST_YEAR + 1}-12-31")


def _known(*days: dt.date) -> bool:
    return all(FIRST_YEAR <= d.year <= LAST_YEAR for d in days)


def sessions_between(after: dt.date, before: dt.date) -> int:
    """Sessions strictly after ``after`` and strictly before ``before`` (0 when there is no room)."""
    first, last = after + dt.timedelta(days=1), before - dt.timedelta(days=1)
    if first > last:
        return 0
    if not _known(first, last):
        return int(np.busday_count(first.isoformat(), before.isoformat()))
    return len(_calendar().sessions_in_range(first.isoformat(), last.isoformat()))


def first_session_of_month(day: dt.date) -> dt.date:
    """The month's first session: its first weekday that is not an exchange holiday."""
    start = dt.date(day.year, day.month, 1)
    if not _known(start):
        while start.weekday() >= 5:
            start += dt.timedelta(days=1)
        return start
    session = _calendar().date_to_session(start.isoformat(), "next")
    return session.date()
