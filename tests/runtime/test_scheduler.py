"""runtime.scheduler.run_sessions, the session walk of `run` and `run --replay`, on real XNYS
sessions and a simulated clock: cycle times, retries, owed rebalances, stops."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from botctl.adapters.calendar import sessions as xnys
from botctl.runtime.scheduler import Slot, run_sessions


class Steps:
    def __init__(self, days: list, *, fail: set[str] = frozenset(), stop_at: datetime | None = None) -> None:
        self.days = days
        self.t = days[0].open - timedelta(hours=1)
        self.fail, self.stop_at = fail, stop_at
        self.log: list[tuple[str, datetime]] = []
        self.owed: list[tuple[object, str]] = []
        self.done = 0

    def now(self) -> datetime:
        return self.t

    def sleep_until(self, when: datetime) -> bool:
        self.t = max(self.t, when)
        return self.stop_at is None or self.t < self.stop_at

    def next_session(self, now):
        return self.days[self.done] if self.done < len(self.days) else None

    def slots(self, session, now):
        return [Slot("b", session.open + timedelta(minutes=45), ["m"]), Slot("a", session.open + timedelta(minutes=30), ["m"])]

    def trade(self, session, slot) -> bool:
        self.log.append((slot.account, self.t))
        return slot.account not in self.fail

    def gave_up(self, session, slot) -> None:
        self.owed.append((session.day, slot.account))

    def mark(self, session) -> None:
        self.log.append(("mark", self.t))
        self.done += 1


def test_each_cycle_at_its_time_then_the_mark_after_the_close():
    days = xnys(date(2024, 3, 1), date(2024, 3, 4))
    steps = Steps(days)
    assert run_sessions(steps, mark_delay=timedelta(minutes=5), retry=True) == "finished"
    first = days[0]
    assert steps.log[:3] == [("a", first.open + timedelta(minutes=30)), ("b", first.open + timedelta(minutes=45)),
                             ("mark", first.close + timedelta(minutes=5))]
    assert len(steps.log) == 3 * len(days)


def test_a_failing_cycle_is_retried_15_30_60_minutes_later_then_owed():
    day = xnys(date(2024, 3, 1), date(2024, 3, 1))
    steps = Steps(day, fail={"a"})
    run_sessions(steps, mark_delay=timedelta(minutes=5), retry=True)
    tries = [t for who, t in steps.log if who == "a"]
    gaps = [(b - a) / timedelta(minutes=1) for a, b in zip(tries, tries[1:])]
    assert gaps[:4] == [15, 30, 60, 120]
    assert all(t < day[0].close - timedelta(minutes=15) for t in tries)
    assert steps.owed == [(day[0].day, "a")]
    without = Steps(day, fail={"a"})
    run_sessions(without, mark_delay=timedelta(0), retry=False)  # a replay: no retries, nothing owed here
    assert [w for w, _ in without.log] == ["a", "b", "mark"] and without.owed == []


def test_a_stop_ends_the_walk_but_a_begun_session_is_finished_when_asked():
    days = xnys(date(2024, 3, 1), date(2024, 3, 5))
    stop = days[0].open + timedelta(minutes=40)  # after a's cycle, before b's
    plain = Steps(days, stop_at=stop)
    assert run_sessions(plain, mark_delay=timedelta(0), retry=False) == "stopped"
    assert [w for w, _ in plain.log] == ["a"]
    whole = Steps(days, stop_at=stop)
    assert run_sessions(whole, mark_delay=timedelta(0), retry=False, finish_started=True) == "stopped"
    assert [w for w, _ in whole.log] == ["a", "b", "mark"]  # the session begun is whole; no other begins
