"""Paper and live trading: one process, every account, a real (or accelerated) clock.

Startup is recovery: before any trading each account is reconciled with its broker (orders
the journal holds in an open or unknown state are looked up by client id; orders and positions
the journal does not know are recorded). Each cycle then decides on the last closed bar, runs
the risk guard, and sends each order only after its row is committed. Client ids are
deterministic per cycle, so a cycle re-run after a crash finds its own orders instead of
placing them again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import msgspec

from botctl.engine import guard
from botctl.engine.positions import BookState, decode_books, encode_books
from botctl.errors import BadMarketData, BotctlError, BrokerError, DataError, StoreError
from botctl.runtime.cycle import AccountCycle, CycleOutcome, breaker_event, starting_guard
from botctl.ports import Broker
from botctl.records import OPEN_ORDER_STATUSES, Event, Fill, NavSnapshot, Order, Position, Severity, SubmitOrder
from botctl.spec.plan import AccountPlan
from botctl.strategy.bars import Bars
from botctl.strategy.evaluate import Decision
from botctl.strategy.signals import Signals

if TYPE_CHECKING:
    from botctl.store import Store

NEW_YORK = ZoneInfo("America/New_York")
GUARD_SCOPE = "live"


def cycle_time(day: date, account: AccountPlan) -> datetime:
    """The cycle's identity: its session and scheduled minute, the same on every restart."""
    minutes = min(m.schedule.after_open_minutes for m in account.models)
    return (datetime.combine(day, time(9, 30), NEW_YORK) + timedelta(minutes=minutes)).astimezone(timezone.utc)


class LiveAccount:
    """One account's trading against its broker, journaling every step."""

    def __init__(self, account: AccountPlan, broker: Broker, store: Store, *, plan_id: str, run_id: str) -> None:
        self.account = account
        self.broker = broker
        self.store = store
        self.plan_id = plan_id
        self.run_id = run_id
        raw = store.guard_state(GUARD_SCOPE, account.id)
        # Signal books' position state, restored from the journal: a restart continues it.
        try:
            stored = store.position_states(GUARD_SCOPE, account.id)
            books: BookState | None = decode_books(stored) if stored else None
        except ValueError as exc:
            raise StoreError(f"account {account.id}: {exc}") from exc
        self.ledger = JournalLedger(store, account.id, run_id)
        # No guard state kept yet: seeded from the broker's equity once reconciled (starting_guard).
        self.kernel = AccountCycle(account, broker, self.ledger, run_id=run_id, namespace=plan_id,
                                   state=msgspec.json.decode(raw, type=guard.GuardState) if raw
                                   else guard.GuardState(account=account.id), books=books)
        self.ready = False
        self.problem: str | None = None
        self.failed_at: datetime | None = None  # when reconciliation last failed
        self.blocked: list[guard.Block] = []  # the risk guard's refusals in the last cycle decided
        self.marked_at: datetime | None = None  # this process's last mark of the account

    def event(self, type_: str, message: str, *, severity: Severity = "INFO", symbol: str | None = None,
              details: dict[str, object] | None = None, now: datetime | None = None) -> None:
        self.store.insert(Event(ts_event=now or datetime.now(timezone.utc), subsystem="live", type=type_,
                                severity=severity, run_id=self.run_id, account=self.account.id, symbol=symbol,
                                message=message, details=details or {}))

    # --- recovery -----------------------------------------------------------------------------

    def reconcile(self, now: datetime) -> None:
        """Bring the journal in line with the broker before trading. On failure the account
        does not trade (the reason is recorded and shown by status)."""
        try:
            self._reconcile(now)
        except BrokerError as exc:
            self.problem = f"reconciliation failed: {exc}"
            self.failed_at = now
            self.event("reconcile.failed", f"{self.problem}; this account will not trade", severity="ERROR", now=now)
            return
        if not self.guard.high_water_mark and not self.guard.last_close_nav:
            try:  # the first sight of this account: its drawdown is measured from here, as a backtest's
                self.guard = starting_guard(self.account.id, self.broker.account().equity)
            except BrokerError as exc:
                self.problem = f"reconciliation failed: {exc}"
                self.failed_at = now
                return
        self.ready = True

    @property
    def guard(self) -> guard.GuardState:
        """The risk guard's state, carried by the account cycle and kept in the journal."""
        return self.kernel.guard

    @guard.setter
    def guard(self, state: guard.GuardState) -> None:
        self.kernel.guard = state

    def _reconcile(self, now: datetime) -> None:
        journal_open = self.store.open_orders(self.account.id)
        for order in journal_open:
            self._resolve(order, now)
        known = {o.client_order_id for o in self.store.orders(self.account.id, status=OPEN_ORDER_STATUSES)}
        for order in self.broker.open_orders():
            if order.client_order_id not in known and self.store.get_order(order.client_order_id) is None:
                self.event("reconcile.foreign_order", f"open order {order.client_order_id} ({order.side} {order.qty:g} "
                           f"{order.symbol}) is at the broker but not in the journal", severity="WARN",
                           symbol=order.symbol, now=now)
        self._sync_positions(now)

    def _resolve(self, order: Order, now: datetime) -> Order:
        """Ask the broker what became of a journaled order; record its state and any fills."""
        fills = self.store.fills(client_order_id=order.client_order_id)
        self.broker.remember_fills(order.client_order_id, sum(f.qty for f in fills), sum(f.qty * f.price for f in fills))
        found = self.broker.get_order(order.client_order_id, order)
        if found is None:
            if order.ts_init.astimezone(NEW_YORK).date() < now.astimezone(NEW_YORK).date():
                gone = msgspec.structs.replace(order, status="canceled", ts_event=now,
                                               reject_reason="never reached the broker; its session is over")
                self.store.upsert_order(gone)
                self.event("reconcile.order_never_sent", f"{order.client_order_id} never reached the broker", now=now)
                return gone
            # Journaled, never seen by the broker (a crash or a failed send before it arrived):
            # still this session's to send, with the same client id, so it can land only once.
            return msgspec.structs.replace(order, status="pending") if order.status == "unknown" else order
        found = msgspec.structs.replace(found, run_id=order.run_id, account=order.account, reason=order.reason,
                                        ts_init=order.ts_init, ref_price=order.ref_price)
        fills = self.broker.fills_for(found)
        with self.store.transaction():
            self.store.upsert_order(found)
            self.store.insert_many(fills)
        if found.status != order.status:
            self.event("reconcile.order_updated", f"{order.client_order_id}: {order.status} -> {found.status}", now=now)
        return found

    def _sync_positions(self, now: datetime) -> None:
        broker_positions = {s: p.qty for s, p in self.broker.positions().items() if p.qty}
        # What the journal holds: the latest mark's positions and the fills made since it
        # (a process killed after a fill and before its mark is no mismatch).
        mark, positions = self.store.account_state(self.account.id)
        journal = {p.symbol: p.qty for p in positions}
        for fill in self.store.fills_after_mark(self.account.id, mark):
            journal[fill.symbol] = journal.get(fill.symbol, 0.0) + (fill.qty if fill.side == "buy" else -fill.qty)
        mismatched = {s for s in set(broker_positions) | set(journal)
                      if abs(broker_positions.get(s, 0.0) - journal.get(s, 0.0)) > 1e-6}
        if mismatched:
            self.event("reconcile.position_mismatch",
                       "broker and journal differ: " + ", ".join(
                           f"{s} broker {broker_positions.get(s, 0):g} journal {journal.get(s, 0):g}" for s in sorted(mismatched))
                       + "; the broker's positions are taken as the truth", severity="WARN",
                       details={"symbols": sorted(mismatched)}, now=now)

    # --- trading ------------------------------------------------------------------------------

    def cycle(self, bars: Bars, signals: Signals, due: list[str], when: datetime, now: datetime, *,
              prices: dict[str, float] | None = None, max_turnover: float | None = None,
              announce: Callable[[str, list[SubmitOrder]], None] | None = None) -> list[Order]:
        """Decide on the last closed bar and send the orders, sized at `prices` (the current
        ones, from the market-data port; the last closes without). Returns the orders sent.

        A cycle decides once. Its orders are committed together before any is sent; a re-run
        of the same cycle (a restart, a second --once) only finishes those orders, because
        deciding again on positions the first run already moved would trade the difference."""
        prefix = self.kernel.prefix(when)
        self.blocked = []
        today = when.astimezone(NEW_YORK).date()
        row = bars.index_of(today - timedelta(days=1))
        journaled = self.store.orders_with_prefix(prefix + "-")
        if journaled:
            if row >= 0:  # the orders still to send go at the prices the cycle was decided at
                self.kernel.price(bars, signals, row, today, prices,
                                  symbols={*self.broker.positions(), *(o.symbol for o in journaled)})
            return self._finish(journaled, now)
        if row < 0:
            raise DataError(f"account {self.account.id}: no bar before {today}")

        def check_first_cycle(accepted: list[SubmitOrder], nav: float) -> None:
            turnover = sum(o.qty * o.ref_price for o in accepted) / nav if nav > 0 else math.inf
            if max_turnover is not None and turnover > max_turnover:
                raise FirstCycleTooLarge(turnover, max_turnover, accepted)
            if announce is not None:
                announce(self.account.id, accepted)

        outcome = self.kernel.run(bars, signals, row, due, self._standing_decisions(bars, signals, due, today),
                                  today=today, when=when, now=now, prices=prices, before_commit=check_first_cycle)
        self.blocked = outcome.blocked
        if outcome.suspect:
            raise SuspectBars("; ".join(why for _, why in outcome.suspect), symbols=[s for s, _ in outcome.suspect])
        return outcome.sent

    def _finish(self, journaled: list[Order], now: datetime) -> list[Order]:
        """Complete a cycle decided before: look up its open orders, send those never sent."""
        outcome = CycleOutcome(result=None)
        for order in sorted(journaled, key=lambda o: o.side != "sell"):
            if outcome.halted:  # a reject tripped a breaker: the rest stay journaled, unsent
                break
            if order.status not in OPEN_ORDER_STATUSES:
                continue
            resolved = self._resolve(order, now)
            if resolved.status == "pending":
                outcome.sent.append(self.kernel.send(resolved, now, outcome))
        return outcome.sent

    def _standing_decisions(self, bars: Bars, signals: Signals, due: list[str], today: date) -> dict[str, Decision]:
        """The targets of models not due today: what each decided at its last scheduled
        rebalance. Decisions are pure functions of the bars, so they are recomputed, not stored."""
        from botctl.strategy.evaluate import decide
        from botctl.strategy.schedule import rebalance_sessions

        out: dict[str, Decision] = {}
        for model in self.account.models:
            if model.name in due:
                continue
            past = [d for d in rebalance_sessions(bars.dates, model.schedule) if d < today]
            if past:
                row = bars.dates.index(past[-1]) - 1
                if row >= 0:
                    out[model.name] = decide(model.steps, model.universe, signals, row)
        return out

    def halt(self, rule: str, reason: str, now: datetime) -> None:
        self.ledger.halt(rule, reason, now, math.nan, math.nan)

    def mark(self, now: datetime, closes: dict[str, float] | None = None) -> NavSnapshot:
        """Record NAV and positions as the broker reports them, and check the breakers."""
        if closes:
            self.broker.mark(closes)
        if self.marked_at is not None and now <= self.marked_at:
            # A second mark at one instant (a halt acted on at the mark time, then the mark
            # after the close) is the later state: a microsecond later, never a clash.
            now = self.marked_at + timedelta(microseconds=1)
        self.marked_at = now
        state = self.broker.account()
        positions = self.broker.positions()
        prices = {s: p.price if p.price else p.avg_price for s, p in positions.items()}
        gross = sum(abs(p.qty) * prices[s] for s, p in positions.items())
        snapshot = NavSnapshot(run_id=self.run_id, account=self.account.id, ts_event=now, nav=state.equity, cash=state.cash,
                               gross_exposure=gross, leverage=gross / state.equity if state.equity > 0 else 0.0)
        with self.store.transaction():
            self.store.insert(snapshot)
            self.store.insert_many(Position(run_id=self.run_id, account=self.account.id, ts_event=now, symbol=s, qty=p.qty,
                                            avg_price=p.avg_price, price=prices[s], value=p.qty * prices[s])
                                   for s, p in sorted(positions.items()))
        self.guard, breach = guard.after_mark(self.guard, self.account.risk, state.equity)
        self.store.put_guard_state(GUARD_SCOPE, self.account.id, msgspec.json.encode(self.guard), now)
        if breach:
            self.halt(*breach, now)
        return snapshot


class SuspectBars(BadMarketData):
    """The cycle refused the bars; its `data.rejected` event is already recorded."""


class JournalLedger:
    """The SQLite journal as the account cycle's Ledger (paper and live): the cycle's orders
    are committed in one transaction before any is sent, each answer in its own."""

    def __init__(self, store: Store, account: str, run_id: str) -> None:
        self.store = store
        self.account = account
        self.run_id = run_id

    def commit(self, orders: list[Order], state: guard.GuardState, now: datetime,
               books: BookState | None = None, notes: Sequence[Event] = ()) -> None:
        with self.store.transaction():  # the orders, the guard, the books' state and the notes, or none of them
            for order in orders:
                self.store.upsert_order(order)
            self.save_guard(state, now)
            if books is not None:
                self.store.put_position_states(GUARD_SCOPE, self.account, encode_books(books), now)
            self.store.insert_many(notes)

    def record(self, order: Order, fills: list[Fill]) -> None:
        with self.store.transaction():
            self.store.upsert_order(order)
            self.store.insert_many(fills)

    def withdraw(self, order: Order) -> None:
        self.store.upsert_order(order)

    def event(self, event: Event) -> None:
        self.store.insert(event)

    def halt(self, rule: str, reason: str, at: datetime, value: float, limit: float) -> bool:
        from botctl.records import Control

        with self.store.transaction():
            self.store.set_control(Control(account=self.account, halted=True, reason=f"{rule}: {reason}", since=at,
                                           who=f"risk guard ({rule})"))
            self.store.insert(breaker_event(self.run_id, self.account, rule, reason, at))
        return True

    def save_guard(self, state: guard.GuardState, now: datetime) -> None:
        self.store.put_guard_state(GUARD_SCOPE, self.account, msgspec.json.encode(state), now)


class FirstCycleTooLarge(BotctlError):
    def __init__(self, turnover: float, limit: float, orders: list[SubmitOrder]) -> None:
        self.orders = orders
        super().__init__(f"the first cycle would trade {turnover:.0%} of NAV, over the {limit:.0%} allowed without "
                         "confirmation")
