"""Which sessions a rebalance schedule falls on. Pure: the caller supplies the session list
(from the exchange calendar for replay and live, from the bars themselves for backtests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache

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


@lru_cache(maxsize=64)
def _cached(sessions: tuple[date, ...], schedule: ScheduleSpec) -> tuple[date, ...]:
    return tuple(_rebalance_sessions(sessions, schedule))


def rebalance_sessions(sessions: Sequence[date], schedule: ScheduleSpec) -> list[date]:
    """See _rebalance_sessions; results for a tuple of sessions are cached, because every
    book of a backtest asks the same question of the same calendar."""
    if isinstance(sessions, tuple):
        return list(_cached(sessions, schedule))
    return _rebalance_sessions(sessions, schedule)


def _rebalance_sessions(sessions: Sequence[date], schedule: ScheduleSpec) -> list[date]:
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

