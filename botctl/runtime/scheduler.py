"""The one scheduler: XNYS sessions walked on a clock, for `run` and `run --replay` alike.

Each session: every account's cycle at its rebalance time after the open (a cycle that fails
is tried again 15, 30, 60... minutes later while the session lasts, when the caller allows
retries; the accounts whose broker answers go first), then the NAV marks once the session
has closed (plus `mark_delay`). Heartbeats and halt polling happen while the clock sleeps:
the clock's `sleep_until` does them (trading.Trader on a wall or accelerated clock,
replay.SimClock on simulated time). What a cycle and a mark do is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from botctl.adapters.calendar import Session

RETRY = timedelta(minutes=15)  # first wait before a failed cycle (data or broker trouble) is tried again


class Slot(NamedTuple):
    """One account's cycle in a session: when, and which models are due."""

    account: str
    at: datetime
    due: list[str]


class Steps(Protocol):
    """What the scheduler calls; the caller decides what each step does."""

    def now(self) -> datetime: ...

    def sleep_until(self, when: datetime) -> bool:
        """Sleep to `when` (heartbeats, halts meanwhile); False when told to stop."""
        ...

    def next_session(self, now: datetime) -> Session | None:
        """The session to run next (its marks not yet done at `now`); None: nothing is left."""
        ...

    def slots(self, session: Session, now: datetime) -> list[Slot]: ...

    def trade(self, session: Session, slot: Slot) -> bool:
        """Run one cycle; False when it failed and may be tried again."""
        ...

    def gave_up(self, session: Session, slot: Slot) -> None:
        """A cycle failed all session: the caller owes it to the next."""
        ...

    def mark(self, session: Session) -> None: ...


def run_sessions(steps: Steps, *, mark_delay: timedelta, retry: bool, ready: Callable[[str], bool] = lambda _: True,
                 finish_started: bool = False, before: Callable[[datetime, str], None] = lambda at, what: None) -> str:
    """Walk sessions until none is left ("finished") or a sleep is cut short ("stopped").
    `before(when, what)` hears of each wake-up ahead (the run's log).
    With `finish_started`, a stop seen once a session's first cycle is due still finishes
    that session (the clock moves on without pausing), so no session is half-recorded."""
    while True:
        session = steps.next_session(steps.now())
        if session is None:
            return "finished"
        if not _trade_session(steps, session, retry=retry, ready=ready, finish_started=finish_started, before=before):
            return "stopped"
        mark_at = session.close + mark_delay
        before(mark_at, "NAV marks after the close")
        if not steps.sleep_until(mark_at) and not finish_started:
            return "stopped"
        steps.mark(session)


def _trade_session(steps: Steps, session: Session, *, retry: bool, ready: Callable[[str], bool], finish_started: bool,
                   before: Callable[[datetime, str], None]) -> bool:
    queue = {slot.account: (slot, 0) for slot in steps.slots(session, steps.now())}
    started = False
    while queue:
        # Accounts whose broker answers go first: one that hangs delays only those after it.
        account = min(queue, key=lambda a: (queue[a][0].at, not ready(a)))
        slot, attempt = queue.pop(account)
        before(slot.at, f"{account} rebalances {', '.join(slot.due)}")
        if not steps.sleep_until(slot.at) and not (finish_started and started):
            return False
        started = True
        if steps.trade(session, slot) or not retry:
            continue
        again = steps.now() + RETRY * 2 ** attempt  # 15, 30, 60... minutes: a dead broker costs little
        if again < session.close - RETRY:
            queue[account] = (slot._replace(at=again), attempt + 1)
        else:
            steps.gave_up(session, slot)
    return True
