"""The NYSE (XNYS) trading calendar from exchange_calendars: sessions, opens and closes
(holidays, half days and DST included). Imported lazily: it pulls in pandas, which commands
that do not need a calendar should not pay for."""

from __future__ import annotations

import warnings
from datetime import date, datetime, timezone
from functools import lru_cache

from botctl.errors import DataError


class Session:
    __slots__ = ("day", "open", "close")

    def __init__(self, day: date, open_: datetime, close: datetime) -> None:
        self.day, self.open, self.close = day, open_, close

    def __repr__(self) -> str:
        return f"Session({self.day}, {self.open:%H:%M}-{self.close:%H:%M}Z)"


@lru_cache(maxsize=1)
def _calendar():
    import exchange_calendars

    return exchange_calendars.get_calendar("XNYS")


def sessions(start: date, end: date) -> list[Session]:
    """Every XNYS session from start to end inclusive, with UTC open and close times."""
    # exchange_calendars trips pandas deprecation warnings internally; they are not ours to fix
    # and must not reach an operator's terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _sessions(start, end)


def _sessions(start: date, end: date) -> list[Session]:
    cal = _calendar()
    first, last = cal.first_session.date(), cal.last_session.date()
    start, end = max(start, first), min(end, last)
    if start > end:
        raise DataError(f"the XNYS calendar covers {first}..{last}; nothing in the requested range")
    schedule = cal.schedule.loc[str(start):str(end)]
    opens = schedule["open"].dt.to_pydatetime()
    closes = schedule["close"].dt.to_pydatetime()
    return [Session(day.date(), o.astimezone(timezone.utc), c.astimezone(timezone.utc))
            for day, o, c in zip(schedule.index, opens, closes)]
