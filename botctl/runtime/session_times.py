"""Market-time stamps for daily bars when no exchange calendar is consulted (backtests):
the open at 09:30 and the close at 16:00 New York time, in UTC."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


def open_at(day: date, minutes_after: int = 0) -> datetime:
    return (datetime.combine(day, time(9, 30), NEW_YORK) + timedelta(minutes=minutes_after)).astimezone(timezone.utc)


def close_at(day: date) -> datetime:
    return datetime.combine(day, time(16, 0), NEW_YORK).astimezone(timezone.utc)
