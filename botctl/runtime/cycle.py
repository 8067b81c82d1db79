"""The account cycle: the one sequence every mode trades through.

Backtest and replay (runtime.book.Book) and paper and live (runtime.live.LiveAccount) all call
`AccountCycle.run`; what differs is only the broker, the clock, the market data and where the
records go (a `Ledger`: in-memory lists for a backtest, the SQLite journal otherwise). The
sequence is:

    suspect-bar check -> engine decision (engine.decide_cycle, the only decision call)
    -> risk guard -> deterministic client ids -> commit to the ledger before any send
    -> submit -> classify the broker's answer -> breakers -> stop sending once one trips.

Signal books' per-position state (engine.positions.BookState) goes into every decision and
comes back with it; the ledger commits the new state with the cycle's orders, so a restart
continues from the state the sent orders were decided with.

Buys that relied on a sell the broker refused (rejected, or an unknown outcome) are checked
against the limits again before they are sent: the cash and exposure they were sized with are
not there. Every event the cycle records carries the same type, subsystem and details' keys in
every mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Protocol

import msgspec

from botctl.engine import guard
from botctl.engine.engine import CycleResult, decide_cycle
from botctl.engine.ids import client_order_id, cycle_prefix
from botctl.engine.positions import BookNote, BookState
from botctl.errors import BrokerAuth, BrokerError
from botctl.ports import Broker
from botctl.records import Event, Fill, Order, Severity, SubmitOrder
from botctl.spec.plan import AccountPlan
from botctl.spec.validate import step_symbols
from botctl.strategy.bars import Bars, RowValues, row_values
from botctl.strategy.evaluate import Decision
from botctl.strategy.signals import Signals

# The subsystem of each event type the cycle records: the same in every mode.
SUBSYSTEM = {
    "data.rejected": "guard",
    "gate.blocked": "guard",
    "breaker.tripped": "guard",
    "order.rejected": "broker",
    "order.unknown": "broker",
}
# An order the broker did not take: buys that counted on such a sell are checked again.
FAILED_STATUSES = frozenset({"rejected", "unknown"})


class Ledger(Protocol):
    """Where one account's cycle records go."""

    def commit(self, orders: list[Order], state: guard.GuardState, now: datetime,
               books: BookState | None = None, notes: Sequence[Event] = ()) -> None:
        """Keep the cycle's orders (status pending) before the broker hears of any of them,
        with the signal books' state they were decided with (None: no signal book) and
        `notes`, the events of that decision (the guard's blocks, the books' entries and
        exits), all together or none: a crash can neither lose nor repeat one of them."""
        ...

    def record(self, order: Order, fills: list[Fill]) -> None:
        """The broker's answer to one order: its new state and any fills."""
        ...

    def withdraw(self, order: Order) -> None:
        """A committed order that is not sent after all (canceled before the broker saw it)."""
        ...

    def event(self, event: Event) -> None: ...

    def halt(self, rule: str, reason: str, at: datetime, value: float, limit: float) -> bool:
        """A breaker tripped: halt the account. True if it is now halted (a backtest run with
        breakers off records the breach and keeps trading)."""
        ...

    def save_guard(self, state: guard.GuardState, now: datetime) -> None:
        """The guard's state after the sends (a journal keeps it across restarts)."""
        ...


class CycleOutcome(msgspec.Struct, kw_only=True):
    result: CycleResult | None  # None: nothing decided (suspect data)
    sent: list[Order] = []  # the broker's answer to each order sent, in order
    blocked: list[guard.Block] = []  # the guard's refusals, before and during the sends
    suspect: tuple[tuple[str, str], ...] = ()  # (symbol, why) when the bars were refused
    widened: bool = False  # decided on a move the fixed collar alone would have refused
    halted: bool = False  # a breaker tripped during the sends


def tradeable_symbols(account: AccountPlan) -> frozenset[str]:
    """What the plan may trade: every universe and every symbol a step names, except
    benchmarks that are only read."""
    return frozenset({s for m in account.models for s in m.universe}
                     | {s for m in account.models for step in m.steps for s, where in step_symbols(step)
                        if where[0] != "benchmark"})


def starting_guard(account: str, nav: float) -> guard.GuardState:
    """The guard before an account's first trade: the drawdown and the day's loss are measured
    from the NAV it starts with (a backtest's starting cash, a broker's equity when first seen)."""
    return guard.GuardState(account=account, high_water_mark=nav, last_close_nav=nav)


def breaker_event(run_id: str, account: str, rule: str, reason: str, at: datetime) -> Event:
    return cycle_event(run_id, account, "breaker.tripped", f"account halted: {reason}", at, severity="CRITICAL",
                       details={"rule": rule})


def cycle_event(run_id: str, account: str, type_: str, message: str, at: datetime, *, severity: Severity = "WARN",
                symbol: str | None = None, details: dict[str, object] | None = None) -> Event:
    return Event(ts_event=at, subsystem=SUBSYSTEM[type_], type=type_, severity=severity, run_id=run_id,
                 account=account, symbol=symbol, message=message, details=details or {})


def book_note_event(run_id: str, account: str, note: BookNote, at: datetime) -> Event:
    """What a signal book did (an exit, an entry, a displacement) or could not do, with the
    rule and the numbers it compared; subsystem "book" in every mode."""
    return Event(ts_event=at, subsystem="book", type=note.type, severity=note.severity, run_id=run_id, account=account,
                 symbol=note.symbol, message=f"{note.model}: {note.message}",
                 details={"model": note.model, "rule": note.rule, **note.numbers})


def blocked_event(run_id: str, account: str, block: guard.Block, at: datetime) -> Event:
    order = block.order
    return cycle_event(run_id, account, "gate.blocked", f"{order.side} {order.qty:g} {order.symbol} blocked: {block.message}",
                       at, symbol=order.symbol,
                       details={"rule": block.rule, "limit": block.limit, "value": block.value,
                                "order": {"side": order.side, "qty": order.qty, "symbol": order.symbol,
                                          "ref_price": order.ref_price}})


class AccountCycle:
    """One account's cycle against its broker, recording through its ledger. `guard` is the
    risk guard's state, carried from cycle to cycle (and changed by fills and rejects)."""

    def __init__(self, account: AccountPlan, broker: Broker, ledger: Ledger, *, run_id: str, namespace: str,
                 state: guard.GuardState, books: BookState | None = None) -> None:
        self.account = account
        self.broker = broker
        self.ledger = ledger
        self.run_id = run_id
        self.namespace = namespace
        self.guard = state
        self.books = books  # the signal books' state, carried from cycle to cycle
        self.tradeable = tradeable_symbols(account)
        self.halt_reason = ""  # the breaker that halted the account during the last sends

    def prefix(self, when: datetime) -> str:
        return cycle_prefix(self.namespace, self.account.id, when)

    def price(self, bars: Bars, signals: Signals, row: int, today: date,
              prices: dict[str, float] | None = None, *,
              symbols: Iterable[str] = ()) -> tuple[dict[str, float], dict[str, float]]:
        """The prices the cycle of session `today` trades at (`prices`, the current ones, a
        symbol without one at its close of bar `row`); the broker is marked at them for
        `symbols` (what it holds, and what it is about to trade: no other mark is ever read),
        with the factors to as-traded prices of the session they are from. Returns (closes,
        those prices)."""
        account = self.account
        closes = row_values(bars.close[row], account.symbols, signals.column_array(account.symbols))
        factors = None
        if bars.as_traded is not None:  # a simulator fills as traded, at the session its prices are from
            priced = row + 1 if prices is not None and row + 1 < len(bars.dates) and bars.dates[row + 1] == today else row
            # read on demand: only the symbols that fill are looked up
            factors = RowValues(bars.as_traded[priced], signals.account_columns(account.symbols))
        # Sized at the current prices given, a symbol without one at its last close.
        at = closes if prices is None else {**closes, **{s: p for s, p in prices.items() if s in closes}}
        self.broker.mark({s: at[s] for s in symbols if s in at}, factors)
        return closes, at

    def run(self, bars: Bars, signals: Signals, row: int, due: list[str], previous: dict[str, Decision], *,
            today: date, when: datetime, now: datetime, prices: dict[str, float] | None = None,
            reason: str | None = None,
            before_commit: Callable[[list[SubmitOrder], float], None] | None = None) -> CycleOutcome:
        """Decide on bar `row` (the last closed bar) for session `today` and send the orders.

        `prices` are what orders are sized and checked at (a current price from market data;
        the last closes by default). `when` names the cycle (its client ids); `now` stamps it.
        `reason` relabels every order (a reweight). `before_commit(orders, nav)` may refuse
        the accepted orders by raising, before anything is kept or sent."""
        account = self.account
        columns = signals.column_array(account.symbols)
        verdict = guard.judge_bars(bars, row, account.symbols, account.risk.price_collar_pct, columns)
        if verdict.suspect:
            suspect = verdict.suspect
            self.ledger.event(cycle_event(
                self.run_id, account.id, "data.rejected",
                "; ".join(why for _, why in suspect) + "; no trade this session, retried at the next", now,
                symbol=suspect[0][0],
                details={"rule": "suspect_data", "symbols": [s for s, _ in suspect], "due": sorted(due)}))
            return CycleOutcome(result=None, suspect=suspect)
        qty = {s: p.qty for s, p in self.broker.positions().items()}
        closes, at = self.price(bars, signals, row, today, prices, symbols=qty)
        state = self.broker.account()
        result = decide_cycle(account, signals, row, due, previous, qty, state.cash, at,
                              fractional=self.broker.fractional, book_state=self.books)
        # what is about to be traded, marked at the prices it was decided at
        self.broker.mark({o.symbol: at[o.symbol] for o in result.orders if o.symbol in at and o.symbol not in qty})
        if reason is not None:
            result = msgspec.structs.replace(
                result, orders=[msgspec.structs.replace(o, reason=reason) for o in result.orders])
        # The collar compares each order's price with the close before it: the last close
        # when the order is priced now, the close before that when it is priced at the close.
        symbols = {o.symbol for o in result.orders}
        if prices is not None:
            last_close = {s: v for s, v in closes.items() if s in symbols}
        elif row >= 1:
            before = bars.close[row - 1]
            last_close = {s: float(before[signals.columns[s]]) for s in symbols}
            last_close = {s: v for s, v in last_close.items() if not math.isnan(v)}
        else:
            last_close = closes
        portfolio = guard.Portfolio(
            nav=state.equity, qty=qty, prices=at, last_close=last_close, universe=self.tradeable,
            data_as_of=bars.dates[row], today=today, buying_power=state.buying_power,
            accepted_moves=frozenset(s for s, _ in verdict.accepted))
        before = self.guard
        accepted, blocked = guard.check_orders(result.orders, account.risk, portfolio, before, now)
        notes = [blocked_event(self.run_id, account.id, block, now) for block in blocked]
        if before_commit is not None:
            try:
                before_commit(accepted, state.equity)
            except BaseException:  # refused: nothing is kept but what the guard refused
                for note in notes:
                    self.ledger.event(note)
                raise
        self.guard = guard.after_orders(self.guard, today, len(accepted))
        prefix = self.prefix(when) if accepted else ""
        orders = [Order(client_order_id=client_order_id(prefix, c.symbol, c.side), run_id=self.run_id,
                        account=account.id, symbol=c.symbol, side=c.side, qty=c.qty, status="pending",
                        ts_init=now, ts_event=now, reason=c.reason, ref_price=c.ref_price) for c in accepted]
        if result.book_state is not None:
            notes += [book_note_event(self.run_id, account.id, note, now) for note in result.book_notes]
        # One commit for the decision: its orders, the guard, the books' state and its events.
        self.ledger.commit(orders, self.guard, now, result.book_state, notes)
        if result.book_state is not None:
            self.books = result.book_state
        outcome = CycleOutcome(result=result, blocked=list(blocked), widened=bool(verdict.accepted))
        self._send_all(orders, accepted, portfolio, before, now, outcome)
        self.ledger.save_guard(self.guard, now)
        return outcome

    def _send_all(self, orders: list[Order], commands: list[SubmitOrder], portfolio: guard.Portfolio,
                  before: guard.GuardState, now: datetime, outcome: CycleOutcome) -> None:
        failed_sells: set[str] = set()
        held: set[int] = set()
        for i, order in enumerate(orders):
            if i in held:
                continue
            if outcome.halted:  # a breaker tripped on an earlier answer: send nothing more
                for j in range(i, len(orders)):
                    if j not in held:
                        self._hold(orders[j], guard.Block(rule="halted", message=f"account halted ({self.halt_reason})",
                                                          order=commands[j], limit=0.0, value=1.0), now, outcome)
                return
            if order.side == "buy" and failed_sells and not any(orders[j].side == "buy" for j in range(i)):
                for j, block in self._recheck(commands, i, failed_sells, portfolio, before, now).items():
                    held.add(j)
                    self._hold(orders[j], block, now, outcome)
                if i in held:
                    continue
            answer = self.send(order, now, outcome)
            outcome.sent.append(answer)
            if order.side == "sell" and answer.status in FAILED_STATUSES:
                failed_sells.add(order.symbol)

    def _recheck(self, commands: list[SubmitOrder], first_buy: int, failed: set[str], portfolio: guard.Portfolio,
                 before: guard.GuardState, now: datetime) -> dict[int, guard.Block]:
        """The guard again on the buys still to send, as if the failed sells had not been
        placed: their shares are still held and their proceeds are not there to spend."""
        freed = sum(c.qty * c.ref_price for c in commands if c.side == "sell" and c.symbol in failed)
        bp = portfolio.buying_power - freed if portfolio.buying_power is not None else None
        kept = msgspec.structs.replace(portfolio, buying_power=bp)
        sells = [c for c in commands[:first_buy] if c.symbol not in failed]
        _, blocked = guard.check_orders(sells + commands[first_buy:], self.account.risk, kept, before, now)
        refused = {id(b.order): b for b in blocked}
        out = {}
        for j in range(first_buy, len(commands)):
            block = refused.get(id(commands[j]))
            if block is not None:
                out[j] = msgspec.structs.replace(block, message=block.message + " (a sell it relied on failed)")
        return out

    def _hold(self, order: Order, block: guard.Block, now: datetime, outcome: CycleOutcome) -> None:
        """An order committed but not to be sent: the guard's block is recorded and the
        ledger withdraws the order (a journal marks its row canceled)."""
        outcome.blocked.append(block)
        self.ledger.event(blocked_event(self.run_id, self.account.id, block, now))
        self.ledger.withdraw(msgspec.structs.replace(order, status="canceled", ts_event=now,
                                                     reject_reason=f"not sent: {block.message}"[:300]))

    def send(self, order: Order, now: datetime, outcome: CycleOutcome | None = None) -> Order:
        """Submit one committed order and classify the answer: recorded, fills fed to the
        guard, a reject or an unknown outcome counted against max_rejects (tripping the
        breaker halts the account). A broker that refuses the keys stops the cycle."""
        try:
            placed, fills = self.broker.submit(order, now)
        except BrokerError as exc:
            unknown = msgspec.structs.replace(order, status="unknown", ts_event=now, reject_reason=str(exc)[:300])
            self.ledger.record(unknown, [])
            self.ledger.event(cycle_event(
                self.run_id, self.account.id, "order.unknown",
                f"{order.client_order_id}: {exc}; it will be looked up, never re-sent blindly", now,
                severity="ERROR", symbol=order.symbol, details={"client_order_id": order.client_order_id}))
            self._rejected(now, outcome)
            if isinstance(exc, BrokerAuth):
                raise
            return unknown
        # The broker's answer keeps what only the journal knows (a simulator's already does).
        if (placed.run_id, placed.account, placed.reason, placed.ts_init, placed.ref_price) != \
                (order.run_id, order.account, order.reason, order.ts_init, order.ref_price):
            placed = msgspec.structs.replace(placed, run_id=order.run_id, account=order.account, reason=order.reason,
                                             ts_init=order.ts_init, ref_price=order.ref_price)
        if fills and any(f.run_id != order.run_id or f.account != order.account for f in fills):
            fills = [msgspec.structs.replace(f, run_id=order.run_id, account=order.account) for f in fills]
        self.ledger.record(placed, fills)
        for fill in fills:
            self.guard = guard.after_fill(self.guard, fill.symbol, fill.ts_event)
        if placed.status == "rejected":
            self.ledger.event(cycle_event(
                self.run_id, self.account.id, "order.rejected", placed.reject_reason or "rejected", placed.ts_event,
                symbol=order.symbol, details={"client_order_id": order.client_order_id}))
            self._rejected(placed.ts_event, outcome)
        return placed

    def _rejected(self, at: datetime, outcome: CycleOutcome | None) -> None:
        self.guard, breach = guard.after_reject(self.guard, self.account.risk, at)
        if breach is not None and (outcome is None or not outcome.halted):
            if self.ledger.halt(*breach, at, float(len(self.guard.reject_times)), float(self.account.risk.max_rejects)):
                self.halt_reason = f"{breach[0]}: {breach[1]}"
                if outcome is not None:
                    outcome.halted = True
