"""Operator and breaker halts, applied to running books.

A halt is a row in the journal's `control` table (written by `botctl kill`, or by a circuit
breaker through `persist_halt`). The runtime polls it between steps, and while a paced clock
sleeps, so a kill is seen within a second: the account's open orders are canceled, its
positions sold when the halt asks to flatten, each step is recorded as an event, and the
halt is acknowledged. Until `botctl resume` clears it, the account places no new orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from botctl.records import Control, Event, Order

if TYPE_CHECKING:
    from botctl.ports import Broker
    from botctl.runtime.book import Book
    from botctl.spec.plan import AccountPlan, Plan
    from botctl.store import Store
    from botctl.store.writer_lock import Holder


class BookJournal(Protocol):
    """Writes a book's new records to the journal (replay's _Journal)."""

    def flush(self, book: Book) -> None: ...


class ControlDesk:
    def __init__(self, store: Store, books: Iterable[Book], journal: BookJournal) -> None:
        self.store = store
        self.books = {b.account.id: b for b in books}
        self.journal = journal

    def persist_halt(self, account: str, rule: str, reason: str, at: datetime) -> None:
        """A breaker tripped: persist the halt like a kill without flatten (acted on by poll)."""
        self.store.set_control(Control(account=account, halted=True, reason=f"{rule}: {reason}",
                                       since=at, who=f"risk guard ({rule})"))

    def poll(self, now: datetime) -> None:
        controls = self.store.controls()
        for account, book in self.books.items():
            control = controls.get(account)
            if control is not None and control.halted:
                if not book.halt:
                    book.halt = f"halted by {control.who}: {control.reason}"
                if control.acked_at is None:
                    self._act(book, control, now)
            elif book.halt:
                book.halt = None
                self.store.insert(halt_cleared_event(book.run_id, account, now))

    def _act(self, book: Book, control: Control, now: datetime) -> None:
        # The journal first holds every order the book has sent: the halt cancels what is
        # open there, on the book's broker, as a trading process does (carry_out_halt).
        self.journal.flush(book)
        with self.store.transaction():
            carry_out_halt(self.store, book.broker, book.account.id, book.run_id, control, now,
                           scope=[book.run_id])
            self.store.set_control(msgspec.structs.replace(control, acked_at=datetime.now(timezone.utc)))


def halt_cleared_event(run_id: str, account: str, now: datetime) -> Event:
    """A running process saw a halt cleared (`botctl resume`, the dashboard)."""
    return Event(ts_event=now, subsystem="control", type="halt.cleared", run_id=run_id, account=account,
                 message="halt cleared; trading resumes at the next cycle")


def carry_out_halt(store: Store, broker: Broker, account: str, run_id: str, control: Control, now: datetime, *,
                   by: str | None = None, scope: list[str] | None = None) -> tuple[int, list[Order]]:
    """The one halt path of every mode (a replay's books, a trading process, a kill with no
    bot running): cancel, then flatten when the halt asks (`halt_at_broker`), and record
    `kill.orders_canceled` and `kill.flatten` events of one shape. `by` says who acted (the
    halt's author by default); `scope`: the runs whose open orders are the account's (a
    paper/live account's own runs by default, a replay's run for a replay). Returns
    (orders canceled, closing orders)."""
    canceled, closing = halt_at_broker(store, broker, account, run_id, flatten=control.flatten, now=now, scope=scope)
    by = by or f"halt by {control.who}"
    events = [Event(ts_event=now, subsystem="control", type="kill.orders_canceled", severity="WARN", run_id=run_id,
                    account=account, message=f"{by}: {canceled} open order(s) canceled",
                    details={"reason": control.reason, "canceled": canceled})]
    if control.flatten:
        filled = sum(1 for o in closing if o.status == "filled")
        events.append(Event(ts_event=now, subsystem="control", type="kill.flatten", severity="WARN", run_id=run_id,
                            account=account, message=f"flatten: {len(closing)} closing order(s) placed at market, "
                                                     f"{filled} filled at once",
                            details={"orders": len(closing), "filled": filled}))
    store.insert_many(events)
    return canceled, closing


def halt_at_broker(store: Store, broker: Broker, account: str, run_id: str, *, flatten: bool, now: datetime,
                   scope: list[str] | None = None) -> tuple[int, list[Order]]:
    """Carry out a halt on a broker, journaled: cancel every open order at the broker, record
    what became of the journal's open orders (of the runs in `scope`), then (flatten) close
    every position at market and record the closing orders and their fills under `run_id`.
    Returns (orders canceled, closing orders)."""
    from botctl.records import OPEN_ORDER_STATUSES
    from botctl.store.journal import ACCOUNT_STATE_KINDS

    runs = scope if scope is not None else store.run_ids(ACCOUNT_STATE_KINDS)
    journal_open = store.orders(account, status=OPEN_ORDER_STATUSES, run_id=runs)
    broker.cancel_all(now)
    canceled = 0
    for order in journal_open:
        fills = store.fills(client_order_id=order.client_order_id)
        broker.remember_fills(order.client_order_id, sum(f.qty for f in fills), sum(f.qty * f.price for f in fills))
        found = broker.get_order(order.client_order_id, order)
        if found is None:  # journaled, never sent: nothing to cancel but the row
            found = msgspec.structs.replace(order, status="canceled", ts_event=now,
                                            reject_reason="canceled by kill; never reached the broker")
        found = msgspec.structs.replace(found, run_id=order.run_id, account=order.account, reason=order.reason,
                                        ts_init=order.ts_init, ref_price=order.ref_price)
        with store.transaction():
            store.upsert_order(found)
            store.insert_many(broker.fills_for(found))
        canceled += found.status == "canceled"
    closing: list[Order] = []
    if flatten:
        for placed, fills in broker.close_all(now):
            placed = msgspec.structs.replace(placed, run_id=run_id, account=account)
            with store.transaction():
                store.upsert_order(placed)
                store.insert_many(msgspec.structs.replace(f, run_id=run_id, account=account) for f in fills)
            closing.append(placed)
    return canceled, closing


# --- the operator's side: what `botctl kill`/`resume` and the dashboard write ------------------


def who_am_i(command: str | None = None) -> str:
    """Who acted: user, host and the command line (which never carries a secret)."""
    import getpass
    import shlex
    import socket
    import sys

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}: {command or 'botctl ' + shlex.join(sys.argv[1:])}"[:500]


def request_halt(store: Store, accounts: list[str], *, flatten: bool, reason: str, who: str) -> None:
    """Persist a halt for each account (one transaction), with a kill.requested event."""
    now = datetime.now(timezone.utc)
    # priority(): the halt goes before the next write of any other process (a replay writing
    # back to back would otherwise keep it waiting for seconds).
    with store.priority(), store.transaction():
        for account in accounts:
            store.set_control(Control(account=account, halted=True, reason=reason, since=now, who=who, flatten=flatten))
            store.insert(Event(ts_event=now, subsystem="control", type="kill.requested", severity="WARN",
                               account=account, message=f"halt requested by {who}: {reason}",
                               details={"flatten": flatten}))


def kill(store: Store, plan: Plan, accounts: list[AccountPlan], *, flatten: bool, reason: str,
         who: str) -> tuple[Holder | None, list[dict[str, Any]], list[dict[str, Any]]]:
    """The emergency stop, as `botctl kill` and the dashboard do it: record the halt, then, if
    no trading process holds the journal, act on each account's broker directly (holding the
    journal's writer lock meanwhile, so no bot starts beside it). Returns (holder, done,
    failed): holder is the running process that will act on the halt, or None."""
    from botctl.store.writer_lock import WriterLock

    request_halt(store, [a.id for a in accounts], flatten=flatten, reason=reason, who=who)
    lock = WriterLock(store.path)
    holder = lock.try_acquire()
    if holder is not None:
        return holder, [], []
    try:
        done, failed = act_without_bot(store, plan, accounts, flatten=flatten, reason=reason)
    finally:
        lock.release()
    return None, done, failed


def act_without_bot(store: Store, plan: Plan, accounts: list[AccountPlan], *, flatten: bool,
                    reason: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """No bot is running: act on each account's broker directly and acknowledge the halt.
    One unreachable broker does not spare the others. Returns (done, failed)."""
    from botctl.errors import BotctlError
    from botctl.runtime.offline_kill import kill_offline

    done, failed = [], []
    for account in accounts:
        try:
            done.append(kill_offline(store, account, plan.plan_id, flatten=flatten, reason=reason))
        except BotctlError as exc:
            failed.append({"account": account.id, "error": str(exc)})
            store.insert(Event(ts_event=datetime.now(timezone.utc), subsystem="control", type="kill.failed",
                               severity="ERROR", account=account.id,
                               message=f"halt recorded, but acting on the broker failed: {exc}"))
            continue
        control = store.controls()[account.id]
        store.set_control(msgspec.structs.replace(control, acked_at=datetime.now(timezone.utc)))
    return done, failed


def clear_halt(store: Store, accounts: list[str], *, who: str) -> list[str]:
    """Clear the halts of `accounts` that are halted; returns those resumed."""
    now = datetime.now(timezone.utc)
    resumed = []
    with store.transaction():
        controls = store.controls()
        for account in accounts:
            previous = controls.get(account)
            if previous is None or not previous.halted:
                continue
            store.set_control(Control(account=account, halted=False, reason=f"resumed (was: {previous.reason})",
                                      since=now, who=who))
            store.insert(Event(ts_event=now, subsystem="control", type="resume", account=account,
                               message=f"halt cleared by {who} (was: {previous.reason})"))
            resumed.append(account)
    return resumed
