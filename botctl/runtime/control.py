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
