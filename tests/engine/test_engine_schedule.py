"""rebalance_sessions: which sessions each schedule trades on."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from botctl.spec.model import ScheduleSpec
from botctl.strategy.schedule import rebalance_sessions

HOLIDAYS_2024 = {date(2024, 1, 1), date(2024, 1, 15), date(2024, 2, 19), date(2024, 3, 29), date(2024, 5, 27),
                 date(2024, 6, 19), date(2024, 7, 4), date(2024, 9, 2), date(2024, 11, 28), date(2024, 12, 25),
                 date(2025, 1, 1)}


def sessions(start: date = date(2024, 1, 1), end: date = date(2025, 1, 31)) -> list[date]:
    out, day = [], start
    while day <= end:
        if day.weekday() < 5 and day not in HOLIDAYS_2024:
            out.append(day)
        day += timedelta(days=1)
    return out


SESSIONS = sessions()


def picks(every: str, day: int = 1, days: list[date] = SESSIONS) -> list[date]:
    return rebalance_sessions(days, ScheduleSpec(every=every, day=day))


def test_monthly_picks_the_first_session_of_each_month():
    assert picks("monthly") == [
        date(2024, 1, 2), date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1), date(2024, 5, 1), date(2024, 6, 3),
        date(2024, 7, 1), date(2024, 8, 1), date(2024, 9, 3), date(2024, 10, 1), date(2024, 11, 1), date(2024, 12, 2),
        date(2025, 1, 2),
    ]


def test_monthly_day_n_picks_the_nth_session():
    assert picks("monthly", day=3)[:4] == [date(2024, 1, 4), date(2024, 2, 5), date(2024, 3, 5), date(2024, 4, 3)]
    # September 2024 starts on Monday the 2nd, a holiday: sessions are 3, 4, 5, ...
    assert date(2024, 9, 5) in picks("monthly", day=3)


def test_a_period_shorter_than_day_trades_on_its_last_session():
    short = [date(2024, 1, 29), date(2024, 1, 30), date(2024, 1, 31), *[d for d in SESSIONS if d.month == 2 and d.year == 2024]]
    assert picks("monthly", day=5, days=short) == [date(2024, 1, 31), date(2024, 2, 7)]


def test_weekly_picks_the_first_session_of_each_iso_week():
    got = picks("weekly")
    assert got[:4] == [date(2024, 1, 2), date(2024, 1, 8), date(2024, 1, 16), date(2024, 1, 22)]  # 15th: MLK day
    # 2024-12-30 (Mon) and 2025-01-02 are the same ISO week 2025-W01: one rebalance.
    assert date(2024, 12, 30) in got and date(2025, 1, 2) not in got
    assert all(b - a >= timedelta(days=3) for a, b in zip(got, got[1:]))
    assert len(got) == len({d.isocalendar()[:2] for d in SESSIONS})


def test_weekly_day_2():
    got = picks("weekly", day=2)
    assert got[:3] == [date(2024, 1, 3), date(2024, 1, 9), date(2024, 1, 17)]


def test_quarterly_picks_the_first_session_of_each_quarter():
    assert picks("quarterly") == [date(2024, 1, 2), date(2024, 4, 1), date(2024, 7, 1), date(2024, 10, 1), date(2025, 1, 2)]


def test_daily_picks_every_session():
    assert picks("daily") == SESSIONS


@pytest.mark.parametrize("every", ["daily", "weekly", "monthly", "quarterly"])
@settings(max_examples=20, deadline=None)
@given(cut=hst.integers(min_value=1, max_value=len(SESSIONS)), day=hst.integers(min_value=1, max_value=5))
def test_a_shorter_calendar_never_invents_a_rebalance(every, cut, day):
    """Knowing fewer sessions (a live process before the future) may only drop picks, never add one."""
    if every == "daily":
        day = 1
    full = set(picks(every, day))
    prefix = picks(every, day, SESSIONS[:cut])
    assert set(prefix) <= full
    if day == 1:  # the first session of a period is known the moment it happens
        assert prefix == [d for d in picks(every, day) if d <= SESSIONS[cut - 1]]
