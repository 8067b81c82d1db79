"""`run --replay`: the scheduler itself on a simulated clock over the XNYS calendar.

Unlike a backtest, a replay walks market time event by event (each session's rebalance time
after the open, then its close), writes every record to the journal as it happens (orders
before they reach the broker), heartbeats, and can be watched with status/tail/tui while it
runs. `speed` is simulated seconds per real second; `None` means as fast as possible.
"""

from __future__ import annotations

import functools
import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from types import FrameType
from typing import TYPE_CHECKING, Any

import msgspec

from botctl.engine.pnl import pnl_since
from botctl.engine.positions import BookState, encode_books
from botctl.errors import DataError, failure_text
from botctl.records import Event, Fill, Order, Run
from botctl.runtime.book import Book
from botctl.runtime.control import ControlDesk
from botctl.runtime.health import HealthServer, Telemetry, record_address
from botctl.runtime.process import STOP_SIGNALS, WallHeartbeat
from botctl.adapters.calendar import Session
from botctl.runtime.scheduler import Slot, run_sessions
from botctl.spec.plan import Plan
from botctl.strategy.bars import Bars
from botctl.strategy.signals import Signals

if TYPE_CHECKING:
    import numpy as np

    from botctl.store import Store


class ReplaySummary(msgspec.Struct):
    run_id: str
    start: date
    end: date
    sessions: int
    status: str
    navs: dict[str, float]
    orders: dict[str, int]
    invested: dict[str, float] = {}  # the money put in (starting cash), per account
    total_pnl: dict[str, float | None] = {}  # NAV minus the money put in (engine.pnl.pnl_since)
    total_return: dict[str, float | None] = {}


class SimClock:
    """Simulated market time. `sleep_until` advances it, pausing for real only when a speed
    is set, so a replay can be made slow enough to watch (or to kill) from another process.
    A paced pause is cut in short slices, each of which looks at `stopped` (a signal), calls
    `on_idle` (operator commands, the heartbeat): a stop is seen within POLL_SECONDS."""

    # A paced clock wakes at least this often (real seconds) to look for operator commands.
    POLL_SECONDS = 0.2

    def __init__(self, start: datetime, speed: float | None,
                 on_idle: Callable[[datetime], None] | None = None,
                 stopped: Callable[[], bool] = lambda: False) -> None:
        self._now = start
        self.speed = speed
        self.on_idle = on_idle
        self.stopped = stopped

    def now(self) -> datetime:
        return self._now

    def sleep_until(self, when: datetime) -> bool:
        """Move to `when`; False when a stop cut the real pause short (the clock still moves,
        so a session being finished is finished at its own times, without waiting)."""
        if when <= self._now:
            return not self.stopped()
        if self.speed and not self.stopped():
            deadline = time.monotonic() + (when - self._now).total_seconds() / self.speed
            while not self.stopped() and (remaining := deadline - time.monotonic()) > 0:
                time.sleep(min(remaining, self.POLL_SECONDS))
                if self.on_idle is not None:
                    self.on_idle(self._now)
        self._now = when
        return not self.stopped()


class StopFlag:
    """SIGTERM/SIGINT/SIGHUP set a flag; the loop stops between steps, never mid-cycle."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | signal.Handlers | None] = {}

    def __enter__(self) -> StopFlag:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _ReplaySteps:
    """The scheduler's steps for a replay: the sessions in the span, every book's cycle at its
    rebalance time (decide, send, fill at the open), the closing marks journaled."""

    def __init__(self, clock: SimClock, sessions: list[Session], rows: dict[date, int], books: list[Book],
                 store: Store, journal: _Journal, controls: ControlDesk, telemetry: Telemetry | None,
                 heartbeat: Callable[[], object], progress: Callable[[int, int, date, dict[str, float]], None] | None,
                 run_id: str, stop: Callable[[], bool]) -> None:
        self.clock, self.sessions, self.rows, self.books = clock, sessions, rows, books
        self.by_id = {b.account.id: b for b in books}
        self.store, self.journal, self.controls, self.telemetry = store, journal, controls, telemetry
        self.heartbeat, self.progress, self.run_id, self.stop = heartbeat, progress, run_id, stop
        self.done = 0

    def now(self) -> datetime:
        return self.clock.now()

    def sleep_until(self, when: datetime) -> bool:
        """The clock moves even when stopped: a session being finished keeps its own times."""
        return self.clock.sleep_until(when) and not self.stop()

    def next_session(self, now: datetime) -> Session | None:
        return self.sessions[self.done] if self.done < len(self.sessions) else None

    def slots(self, session: Session, now: datetime) -> list[Slot]:
        # Every book every session: a book with nothing due still reweights (if asked) and
        # polls its halts; the first session allocates every model.
        force = self.done == 0
        return [Slot(b.account.id, session.open + timedelta(minutes=min(m.schedule.after_open_minutes
                                                                         for m in b.account.models)),
                     b.due(session.day, force=force)) for b in self.books]

    def trade(self, session: Session, slot: Slot) -> bool:
        book, row = self.by_id[slot.account], self.rows.get(session.day)
        if row is None:
            self.store.insert(Event(ts_event=self.clock.now(), subsystem="data", type="data.missing_bar", severity="WARN",
                                    run_id=self.run_id, account=book.account.id,
                                    message=f"no bar for {session.day}; not trading this session"))
            return True
        self.controls.poll(self.clock.now())
        began = time.perf_counter()
        with self.store.transaction():
            book.rebalance(row, slot.due, self.clock.now())
            book.open(row, self.clock.now())
            self.journal.flush(book)
        if self.telemetry is not None:
            self.telemetry.cycle.labels(book.account.id).observe(time.perf_counter() - began)
        return True

    def gave_up(self, session: Session, slot: Slot) -> None:
        return None  # no retries in a replay: a refused rebalance is owed by the book itself

    def mark(self, session: Session) -> None:
        row, store, telemetry = self.rows.get(session.day), self.store, self.telemetry
        with store.transaction():
            for book in self.books:
                if row is not None:
                    mark = book.close(row, session.close)
                    store.insert(mark)
                    if telemetry is not None:
                        telemetry.nav.labels(mark.account).set(mark.nav)
                        telemetry.cash.labels(mark.account).set(mark.cash)
                        telemetry.leverage.labels(mark.account).set(mark.leverage)
                    store.insert_many(book.positions(session.close))
                    store.put_guard_state(self.run_id, book.account.id, msgspec.json.encode(book.guard), session.close)
                self.journal.flush(book)
        self.heartbeat()
        if telemetry is not None:
            telemetry.cycled(session.close)
        self.done += 1
        if self.progress:
            self.progress(self.done, len(self.sessions), session.day, {b.account.id: b.broker.equity() for b in self.books})


class _Journal:
    """Writes each book's new records to the store, remembering how far it got, so every
    order, fill and event reaches the journal exactly once whatever produced it."""

    def __init__(self, store: Store, telemetry: Telemetry | None = None) -> None:
        self.store = store
        self.telemetry = telemetry
        self.seen: dict[str, tuple[int, int, int]] = {}

    def flush(self, book: Book) -> None:
        orders, fills, events = self.seen.get(book.account.id, (0, 0, 0))
        new_orders = {o.client_order_id: o for o in book.orders[orders:]}
        for order in new_orders.values():
            self.store.upsert_order(order)
        self.store.insert_many(book.fills[fills:])
        self.store.insert_many(book.events[events:])
        if self.telemetry is not None:
            _observe(self.telemetry, book, list(new_orders.values()), book.fills[fills:], book.events[events:])
        self.seen[book.account.id] = (len(book.orders), len(book.fills), len(book.events))


def _observe(telemetry: Telemetry, book: Book, orders: list[Order], fills: list[Fill], events: list[Event]) -> None:
    account = book.account.id
    for order in orders:
        if order.status not in ("pending", "accepted"):
            telemetry.orders.labels(account, order.status).inc()
    if fills:
        telemetry.fills.labels(account).inc(len(fills))
    for event in events:
        if event.type == "gate.blocked":
            telemetry.blocked.labels(account, event.details.get("rule", "?")).inc()
        if event.severity != "INFO":
            telemetry.problem(event.subsystem, event.severity)
    telemetry.account_state(account, halted=bool(book.halt))


def _keep_book_state(store: Store, run_id: str, account: str, state: BookState) -> None:
    store.put_position_states(run_id, account, encode_books(state), datetime.now(timezone.utc))


def run_replay(plan: Plan, bars: Bars, store: Store, start: date, end: date, *, speed: float | None,
               progress: Callable[[int, int, date, dict[str, float]], None] | None = None,
               telemetry: Telemetry | None = None, health: HealthServer | None = None,
               external_scores: Mapping[str, np.ndarray] | None = None) -> ReplaySummary:
    from botctl.adapters.calendar import sessions as xnys_sessions

    sessions = [s for s in xnys_sessions(start, end) if s.day <= bars.dates[-1]]
    if not sessions:
        raise DataError(f"no XNYS sessions with data between {start} and {end} (data ends {bars.dates[-1]})")
    rows = {day: i for i, day in enumerate(bars.dates)}
    run_id = f"replay-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    started = datetime.now(timezone.utc)
    run = Run(run_id=run_id, kind="replay", plan_id=plan.plan_id, started_at=started, pid=os.getpid(),
              heartbeat_at=started, period_start=sessions[0].day.isoformat(), period_end=sessions[-1].day.isoformat())
    store.upsert_run(run)
    if health is not None:
        record_address(store, run_id, health, sessions[0].open - timedelta(minutes=1))
    signals = Signals(bars, tuple(step for a in plan.accounts for m in a.models for step in m.steps), external_scores)
    books = [Book(a, bars, run_id=run_id, namespace=run_id, signals=signals) for a in plan.accounts]
    journal = _Journal(store, telemetry)
    controls = ControlDesk(store, books, journal)
    for book in books:
        book.before_submit = store.upsert_order
        book.on_halt = controls.persist_halt
        # signal books' position state, kept under the run's id (updated_at: when it was written)
        book.on_book_state = functools.partial(_keep_book_state, store, run_id, book.account.id)
    flag = StopFlag()
    heartbeat = WallHeartbeat(lambda at: store.heartbeat(run_id, at))

    def idle(now: datetime) -> None:
        controls.poll(now)
        heartbeat()

    clock = SimClock(sessions[0].open - timedelta(minutes=1), speed, on_idle=idle, stopped=lambda: flag.stop)
    status = "finished"
    done = 0
    try:
        with flag:
            store.insert(Event(ts_event=clock.now(), subsystem="runtime", type="run.started", run_id=run_id,
                               message=f"replay {sessions[0].day}..{sessions[-1].day} at speed {speed or 'max'}"))
            controls.poll(clock.now())  # a bot started while halted reconciles but does not trade
            # The money put in, marked when the replay's clock starts, before the first session's
            # open: status and the dashboard measure P&L and drawdown from it. (Not at the
            # previous close: that time may already hold an earlier run's closing mark.)
            with store.transaction():
                store.insert_many(book.opening_mark(clock.now()) for book in books)
            steps = _ReplaySteps(clock, sessions, rows, books, store, journal, controls, telemetry, heartbeat,
                                 progress, run_id, stop=lambda: flag.stop)
            # A stop seen before a session's first step ends the replay there; once a session
            # has begun it is finished (unpaced), so every session is whole.
            status = run_sessions(steps, mark_delay=timedelta(0), retry=False, finish_started=True)
            done = steps.done
    except BaseException as exc:
        store.end_run(run, "failed", failure_text(exc), datetime.now(timezone.utc))
        raise
    ended = datetime.now(timezone.utc)
    store.insert(Event(ts_event=clock.now(), subsystem="runtime", type=f"run.{status}", run_id=run_id,
                       message=f"{done} of {len(sessions)} sessions replayed"))
    store.upsert_run(msgspec.structs.replace(run, status=status, ended_at=ended, heartbeat_at=ended))
    navs = {b.account.id: b.broker.equity() for b in books}
    invested = {b.account.id: b.account.starting_cash for b in books}
    pnl = {a: pnl_since(navs[a], invested[a]) for a in navs}
    return ReplaySummary(
        run_id=run_id, start=sessions[0].day, end=sessions[max(done - 1, 0)].day, sessions=done, status=status,
        navs=navs, orders={b.account.id: len({o.client_order_id for o in b.orders}) for b in books},
        invested=invested, total_pnl={a: p for a, (p, _) in pnl.items()},
        total_return={a: r for a, (_, r) in pnl.items()},
    )
