"""Decision times for `external_scores` rows from exchange sessions (botctl.feeds.pointintime).

The engine decides in session r+1 on bar r, so the row of bar r is decided at the NEXT
session's rebalance time: its open plus `after_open_minutes` (the schedule's). The calendar
(XNYS: holidays, half days, DST) says when that is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta


def decision_times(dates: Sequence[date], after_open_minutes: int) -> list[datetime]:
    """One aware UTC datetime per date: the next session's open + after_open_minutes."""
    if not dates:
        return []
    from botctl.adapters.calendar import sessions

    calendar = sessions(dates[0], dates[-1] + timedelta(days=14))
    days = [s.day for s in calendar]
    import bisect

    out = []
    for day in dates:
        i = bisect.bisect_right(days, day)  # the first session after `day`
        if i >= len(calendar):
            raise ValueError(f"no session after {day} in the calendar")
        out.append(calendar[i].open + timedelta(minutes=after_open_minutes))
    return out
