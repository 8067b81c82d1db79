"""Which sessions a rebalance schedule falls on. Pure: the caller supplies the session list
(from the exchange calendar for replay and live, from the bars themselves for backtests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from botctl.spec.model import ScheduleSpec


def period_key(day: date, every: str) -> tuple[int, ...]:
    if every == "daily":
        return (day.toordinal(),)
    if every == "weekly":
        year, week, _ = day.isocalendar()
        return (year, week)
    if every == "monthly":
        return (day.year, day.month)
    return (day.year, (day.month - 1) // 3)


def rebalance_sessions(sessions: Sequence[date], schedule: ScheduleSpec) -> list[date]:
    """The `day`-th session of every period in `sessions` (sorted). Give the full calendar, not
    a window that starts mid-period: the first session of a window is not the first of its month.
    A period shorter than `day` sessions rebalances on its last session."""
    out: list[date] = []
    current: tuple[int, ...] | None = None
    count = 0
    picked = False
    last: date | None = None
    for day in sessions:
        key = period_key(day, schedule.every)
        if key != current:
            if current is not None and not picked and last is not None:
                out.append(last)
            current, count, picked = key, 0, False
        count += 1
        if count == schedule.day:
            out.append(day)
            picked = True
        last = day
    return out

