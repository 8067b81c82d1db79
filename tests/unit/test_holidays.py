"""The NYSE's rule-based holidays (what `status` uses to start fast) agree with the exchange
calendar on every weekday, but for the one-off closures no rule can predict."""

from __future__ import annotations

from datetime import date, timedelta

from botctl.adapters.calendar import sessions
from botctl.strategy.holidays import is_regular_session, nyse_holidays

# Closures for events, not rules: national days of mourning, 9/11, Hurricane Sandy.
ONE_OFF = {date(2001, 9, 11), date(2001, 9, 12), date(2001, 9, 13), date(2001, 9, 14), date(2004, 6, 11),
           date(2007, 1, 2), date(2012, 10, 29), date(2012, 10, 30), date(2018, 12, 5), date(2025, 1, 9)}


def test_every_weekday_the_exchange_calendar_covers_matches_it():
    covered = sessions(date(1998, 1, 1), date(2035, 12, 31))  # the calendar's own range within these
    start, end = covered[0].day, covered[-1].day
    assert start.year <= 2010 and end.year >= 2026
    trading = {s.day for s in covered}
    day, wrong = start, []
    while day <= end:
        if day.weekday() < 5 and day not in ONE_OFF and is_regular_session(day) != (day in trading):
            wrong.append(day)
        day += timedelta(days=1)
    assert wrong == []


def test_observed_dates_and_easter():
    assert date(2027, 12, 24) in nyse_holidays(2027)  # Christmas on a Saturday: the Friday before
    assert date(2022, 1, 1) not in nyse_holidays(2022) and date(2021, 12, 31) not in nyse_holidays(2021)
    assert date(2023, 1, 2) in nyse_holidays(2023)  # New Year's Day on a Sunday: the Monday after
    assert date(2026, 4, 3) in nyse_holidays(2026)  # Good Friday 2026
    assert not is_regular_session(date(2026, 1, 1)) and is_regular_session(date(2026, 1, 2))
