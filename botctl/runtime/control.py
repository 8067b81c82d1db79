"""Operator and breaker halts, applied to running books.

A halt is a row in the journal's `control` table (written by `botctl kill`, or by a circuit
breaker through `persist_halt`). The runtime polls it between steps, and while a paced clock
sleeps, so a kill is seen within a second: the account's open orders are canceled, its
positions sold when the halt asks to flatten, each step is recorded as an event, and the
halt is acknowledged. Until `botctl resume` clears it, the account places no new orders.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec

from botctl.records import Control, Event


class ControlDesk:
    def __init__(self, store, books, journal) -> None:
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
                self.store.insert(Event(ts_event=now, subsystem="control", type="halt.cleared", run_id=book.run_id,
                                        account=account, message="halt cleared; trading resumes at the next cycle"))

    def _act(self, book, control: Control, now: datetime) -> None:
        with self.store.transaction():
            canceled = book.cancel_open_orders(now)
            book.events.append(Event(ts_event=now, subsystem="control", type="kill.orders_canceled", severity="WARN",
                                     run_id=book.run_id, account=book.account.id,
                                     message=f"halt by {control.who}: {canceled} open order(s) canceled",
                                     details={"reason": control.reason}))
            if control.flatten:
                sold = book.flatten(now)
                book.events.append(Event(ts_event=now, subsystem="control", type="kill.flatten", severity="WARN",
                                         run_id=book.run_id, account=book.account.id,
                                         message=f"flatten: {sold} sell order(s) placed for every position"))
            self.journal.flush(book)
            self.store.set_control(msgspec.structs.replace(control, acked_at=datetime.now(timezone.utc)))


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


def request_halt(store, accounts: list[str], *, flatten: bool, reason: str, who: str) -> None:
    """Persist a halt for each account (one transaction), with a kill.requested event."""
    now = datetime.now(timezone.utc)
    with store.transaction():
        for account in accounts:
            store.set_control(Control(account=account, halted=True, reason=reason, since=now, who=who, flatten=flatten))
            store.insert(Event(ts_event=now, subsystem="control", type="kill.requested", severity="WARN",
                               account=account, message=f"halt requested by {who}: {reason}",
                               details={"flatten": flatten}))


def act_without_bot(store, plan, accounts, *, flatten: bool, reason: str) -> tuple[list[dict], list[dict]]:
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


def clear_halt(store, accounts: list[str], *, who: str) -> list[str]:
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
