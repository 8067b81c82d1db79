"""One simulated account ("book") driven bar by bar: the engine decides, the SimBroker fills,
and every order, fill and NAV mark is kept as a record for the journal.

Backtests drive a book as fast as the loop goes; replays drive the same book from the
scheduler on a simulated clock. Either way the sequence each session is: decide on the last
closed bar, submit (fills at this bar's open, or at the signal bar's close with `fill: close`),
then mark at this bar's close.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime

import msgspec
import numpy as np

from botctl.adapters.sim_broker import SimBroker
from botctl.engine import guard
from botctl.engine.guard import Block
from botctl.engine.engine import CycleResult, account_signals
from botctl.engine.positions import BookState
from botctl.runtime.cycle import AccountCycle, breaker_event, starting_guard
from botctl.records import Event, Fill, NavSnapshot, Order, Position
from botctl.spec.plan import AccountPlan
from botctl.strategy.bars import Bars, RowValues, describe_gap, forward_fill, gaps, row_values
from botctl.strategy.evaluate import Decision
from botctl.strategy.signals import Signals
from botctl.runtime.session_times import close_at
from botctl.strategy.schedule import rebalance_sessions


# What a tripped circuit breaker does to a backtest book (`backtest --breakers`):
#   halt                 what an unattended account does: no new orders to the end (holdings kept);
#   resume-next-session  the halt is cleared before the next session's open, as an operator would,
#                        and the drawdown breaker is measured from the NAV at the trip from then on;
#   off                  breakers are not evaluated: the figures are the strategy's alone.
BREAKER_MODES = ("halt", "resume-next-session", "off")
# Between two scheduled rebalances a book can (`backtest --rebalancing`):
#   hold      keep the shares bought (the weights drift with prices): what the live bot does;
#   reweight  trade back to the schedule's last targets at every session, keeping its selection
#             (what constant-weight references and weight-based backtests assume).
REBALANCING_MODES = ("hold", "reweight")


class BreakerTrip(msgspec.Struct, kw_only=True):
    """One breaker trip in a book: when, why, and the rebalances it skipped."""

    rule: str
    reason: str
    at: datetime
    value: float
    limit: float
    resumed_at: date | None = None  # the session trading resumed, None while halted
    skipped: list[date] = []  # scheduled rebalance sessions not traded because of it


class Book:
    def __init__(self, account: AccountPlan, bars: Bars, *, run_id: str, namespace: str,
                 signals: Signals | None = None, breakers: str = "halt", rebalancing: str = "hold") -> None:
        if breakers not in BREAKER_MODES:
            raise ValueError(f"breakers must be one of {', '.join(BREAKER_MODES)}, not {breakers!r}")
        if rebalancing not in REBALANCING_MODES:
            raise ValueError(f"rebalancing must be one of {', '.join(REBALANCING_MODES)}, not {rebalancing!r}")
        self.breakers = breakers
        self.rebalancing = rebalancing
        self.account = account
        self.bars = bars
        self.run_id = run_id
        self.namespace = namespace
        self.signals = signals or account_signals(account, bars)
        self.broker = SimBroker(account.starting_cash, account.sim, account=account.id, run_id=run_id)
        self.columns = [self.signals.columns[s] for s in account.symbols]
        self.rebalance_days = {m.name: set(rebalance_sessions(bars.dates, m.schedule)) for m in account.models}
        self.decisions: dict[str, Decision] = {}
        self.orders: list[Order] = []
        self.fills: list[Fill] = []
        # Daily marks as parallel lists (rows, nav, cash, gross): cheap to extend a whole span
        # at once; NavSnapshot records are made from them only when the journal wants them.
        self.mark_rows: list[int] = []
        self.mark_nav: list[float] = []
        self.mark_cash: list[float] = []
        self.mark_gross: list[float] = []
        self.events: list[Event] = []
        self.traded_notional = 0.0
        self._last_close_row: int | None = None
        # Called with each order before it reaches the broker: the replay and live runtimes
        # commit the order row here, so a crash mid-send can always be reconciled.
        self.before_submit: Callable[[Order], object] | None = None  # its answer is not used
        self.cycle = AccountCycle(account, self.broker, _BookLedger(self), run_id=run_id, namespace=namespace,
                                  state=starting_guard(account.id, account.starting_cash))
        self.blocks: dict[str, int] = {}
        self.owed: set[str] = set()  # models whose rebalance was refused on suspect data
        self.submitted_due: list[str] = []  # the models whose orders await the next open
        # Decisions taken on a move beyond the fixed price collar that the market's move and
        # the symbol's volatility explain (the fixed collar alone would have deferred them).
        self.collar_widened = 0
        # Set when the account is halted (a breaker tripped, or an operator's kill): no new
        # orders until it is cleared. `on_halt` lets the replay/live runtime persist the halt.
        self.halt: str | None = None
        self.on_halt: Callable[[str, str, str, datetime], None] | None = None
        self.trips: list[BreakerTrip] = []
        # Called with the signal books' state each cycle commits (the replay journals it).
        self.on_book_state: Callable[[BookState], object] | None = None
        self._resume_row: int | None = None  # with resume-next-session: the session the halt ends

    @property
    def book_state(self) -> BookState | None:
        """The signal books' per-position state (engine.positions), carried by the account cycle."""
        return self.cycle.books

    @property
    def guard(self) -> guard.GuardState:
        """The risk guard's state, carried by the account cycle."""
        return self.cycle.guard

    @guard.setter
    def guard(self, state: guard.GuardState) -> None:
        self.cycle.guard = state

    def prices(self, matrix: np.ndarray, row: int, symbols: list[str] | None = None) -> dict[str, float]:
        """{symbol: value} at `row` of the account's symbols (or of `symbols`, a few of them)."""
        if symbols is None:
            return row_values(matrix[row], self.account.symbols, self.columns)
        return row_values(matrix[row], symbols, [self.signals.columns[s] for s in symbols])

    def due(self, day: date, *, force: bool = False) -> list[str]:
        """Models to rebalance on `day`: the scheduled ones, and any whose rebalance was
        refused on suspect data and is still owed."""
        return [m.name for m in self.account.models
                if force or day in self.rebalance_days[m.name] or m.name in self.owed]

    def note_gaps(self, first: int, last: int) -> None:
        """A `data.gap` WARN for each long run of missing bars of the account's symbols in rows
        first..last, stamped at the gap's first session."""
        for gap in gaps(self.bars, self.account.symbols, rows=(first, last)):
            self.events.append(Event(
                ts_event=close_at(gap.first), subsystem="data", type="data.gap", severity="WARN", run_id=self.run_id,
                account=self.account.id, symbol=gap.symbol, message=describe_gap(gap),
                details={"first": str(gap.first), "last": str(gap.last), "sessions": gap.sessions},
            ))

    def rebalance(self, row: int, due: list[str], now: datetime) -> CycleResult | None:
        """Decide on bar `row - 1` (the last closed bar) and submit the orders at `now`.
        Returns None when nothing was decided (nothing due, halted, or suspect data)."""
        if self._resume_row is not None and row >= self._resume_row:
            self._resume(row)
        reweight = not due and self.rebalancing == "reweight" and bool(self.decisions)
        if row < 1 or not (due or reweight):
            return None
        if self.halt:
            if due and self.trips and self.trips[-1].resumed_at is None:
                self.trips[-1].skipped.append(self.bars.dates[row])
            return None
        outcome = self.cycle.run(self.bars, self.signals, row - 1, due, self.decisions, today=self.bars.dates[row],
                                 when=now, now=now, reason="reweight" if reweight else None)
        self._count(outcome.blocked)
        if outcome.result is None:  # suspect data: tried again next session
            self.owed.update(due)
            self.blocks["suspect_data"] = self.blocks.get("suspect_data", 0) + 1
            return None
        self.owed.clear()
        self.submitted_due = list(due)
        if outcome.widened:
            self.collar_widened += 1
        if outcome.halted and self._resume_row is not None:
            self.owed.update(due)  # the rebalance is finished when the halt ends
        self.decisions = outcome.result.decisions
        return outcome.result

    def open(self, row: int, now: datetime) -> None:
        """Fill the pending orders at session `row`'s open. Prices are looked up only for the
        symbols with an order (and, as traded, for any a fill asks for, a flatten's too): a
        fill reads no other."""
        pending = self.broker.open_orders()
        symbols = sorted({o.symbol for o in pending})
        if self.bars.as_traded is not None:  # fills carry the as-traded prices of the session they fill at
            # read on demand: only the symbols that fill are looked up
            self.broker.as_traded = RowValues(self.bars.as_traded[row], self.signals.columns)
        if not pending:
            return
        suspect = guard.suspect_fill_prices(self.bars, row, symbols, self.account.risk.price_collar_pct,
                                            [self.signals.columns[s] for s in symbols])
        if suspect:  # never fill at a bad price: the cycle's orders wait for a clean decision
            for order in pending:
                canceled = self.broker.cancel(order.client_order_id, now)
                if canceled is not None:
                    self._record(canceled, [])
            self.owed.update(self.submitted_due)
            self.events.append(Event(
                ts_event=now, subsystem="guard", type="data.rejected", severity="WARN", run_id=self.run_id,
                account=self.account.id, symbol=suspect[0][0],
                message="; ".join(why for _, why in suspect) + f"; {len(pending)} order(s) canceled unfilled, "
                        "the rebalance retried at the next session",
                details={"rule": "suspect_fill_price", "symbols": [s for s, _ in suspect], "due": self.submitted_due},
            ))
            self.blocks["suspect_data"] = self.blocks.get("suspect_data", 0) + 1
            return
        answers = self.broker.on_open(self.prices(self.bars.open, row, symbols), now)
        self.guard = guard.after_fills(self.guard, [(f.symbol, f.ts_event) for _, fills in answers for f in fills])
        for order, fills in answers:
            self._keep(order, fills)
            if order.status == "canceled":  # no bar to fill at: say so, it changes what is held
                self.events.append(Event(
                    ts_event=now, subsystem="broker", type="order.canceled", severity="WARN", run_id=self.run_id,
                    account=order.account, symbol=order.symbol,
                    message=f"{order.side} {order.qty:g} {order.symbol} canceled: {order.reject_reason or 'canceled'} "
                            f"on {self.bars.dates[row]}",
                    details={"client_order_id": order.client_order_id, "reason": order.reject_reason},
                ))

    def close(self, row: int, now: datetime) -> NavSnapshot:
        """Mark one session's close (the replay path) and return the snapshot."""
        self.mark_span(row, row, lambda _: now)
        return self.snapshot(len(self.mark_rows) - 1, now)

    def mark_span(self, first: int, last: int, stamp: Callable[[int], datetime] | None = None) -> None:
        """Mark closes for rows first..last while holdings stay fixed, vectorised: between two
        rebalances nothing trades, so each day's NAV is cash + holdings x closes."""
        broker = self.broker
        symbols = sorted(broker.qty)
        columns = [self.signals.columns[s] for s in symbols]
        # the closes of rows first-1..last: the marks, and the closes the collar compares them with
        block = self.bars.close[max(first - 1, 0): last + 1][:, columns]
        closes = block[1:] if first >= 1 else block
        suspect = guard.suspect_closes(self.bars, first, last, columns, self.account.risk.price_collar_pct,
                                       block if first >= 1 else None)
        if suspect is not None:  # a suspect close is marked at the last good price, like a missing bar
            closes = np.where(suspect, np.nan, closes)
        if np.isnan(closes).any():  # a missing bar keeps the last known price
            seed = np.array([broker.last_price.get(s, np.nan) for s in symbols])
            closes = forward_fill(closes, seed)
        qty = np.array([broker.qty[s] for s in symbols])
        values = closes * qty if symbols else np.zeros((last - first + 1, 0))
        gross = np.abs(values).sum(axis=1)
        held = values.sum(axis=1)
        cash = np.full(len(held), broker.cash)
        if broker.cash < 0 and broker.settings.borrow_rate > 0:
            for i, row in enumerate(range(first, last + 1)):  # interest compounds: walk the days
                if self._last_close_row is not None:
                    broker.accrue_borrow((self.bars.dates[row] - self.bars.dates[self._last_close_row]).days)
                self._last_close_row = row
                cash[i] = broker.cash
        if symbols:
            broker.mark({s: p for s, p in zip(symbols, closes[-1].tolist()) if not math.isnan(p)})
        self._last_close_row = last
        navs = (cash + held).tolist()
        if self.breakers != "off":
            self._check_marks(first, navs, stamp)
        self.mark_rows.extend(range(first, last + 1))
        self.mark_nav.extend(navs)
        self.mark_cash.extend(cash.tolist())
        self.mark_gross.extend(gross.tolist())

    def opening_mark(self, at: datetime) -> NavSnapshot:
        """The money put in, marked before the first trade: what a run's total P&L, return and
        drawdown are measured from (the backtest's first mark, at the prior close, is the same)."""
        cash = self.account.starting_cash
        return NavSnapshot(run_id=self.run_id, account=self.account.id, ts_event=at, nav=cash, cash=cash,
                           gross_exposure=0.0, leverage=0.0)

    def snapshot(self, i: int, now: datetime) -> NavSnapshot:
        nav, gross = self.mark_nav[i], self.mark_gross[i]
        return NavSnapshot(run_id=self.run_id, account=self.account.id, ts_event=now, nav=nav,
                           cash=self.mark_cash[i], gross_exposure=gross, leverage=gross / nav if nav > 0 else 0.0)

    def positions(self, now: datetime) -> list[Position]:
        out = []
        for symbol, qty in sorted(self.broker.qty.items()):
            price = self.broker.last_price.get(symbol, 0.0)
            out.append(Position(run_id=self.run_id, account=self.account.id, ts_event=now, symbol=symbol, qty=qty,
                                avg_price=self.broker.avg_price.get(symbol, 0.0), price=price, value=qty * price))
        return out

    def _check_marks(self, first: int, navs: list[float], stamp: Callable[[int], datetime] | None) -> None:
        """Feed closing marks of rows first.. to the breakers; trip on a breach."""
        done = 0
        while done < len(navs):
            self.guard, found = guard.after_marks(self.guard, self.account.risk, navs[done:])
            if found is None:
                return
            index, breach = found
            row = first + done + index
            done += index + 1
            if self.halt and self.breakers == "halt":
                return  # already halted to the end: later breaches change nothing
            self.trip(breach.rule, breach.reason, stamp(row) if stamp else close_at(self.bars.dates[row]),
                      value=breach.value, limit=breach.limit)
            if self.breakers == "resume-next-session":
                self._resume_after(row)
                # Cleared by the operator: the drawdown is measured afresh from here.
                self.guard = msgspec.structs.replace(self.guard, high_water_mark=navs[done - 1])

    def trip(self, rule: str, reason: str, at: datetime, *,
             value: float = math.nan, limit: float = math.nan) -> None:
        """Halt the account: no new orders until the halt is cleared. Holdings are kept."""
        self.halt = f"{rule}: {reason}"
        self.trips.append(BreakerTrip(rule=rule, reason=reason, at=at, value=value, limit=limit))
        self.events.append(breaker_event(self.run_id, self.account.id, rule, reason, at))
        if self.on_halt is not None:
            self.on_halt(self.account.id, rule, reason, at)

    def halted_at(self, row: int) -> str | None:
        """The halt in force at session `row` (a breaker's with the session it tripped at)."""
        if not self.halt or (self._resume_row is not None and self._resume_row <= row):
            return None
        trip = self.trips[-1] if self.trips else None
        if trip is not None and trip.resumed_at is None:
            return f"{trip.rule} on {trip.at.date()}: {trip.reason}"
        return self.halt

    def _resume_after(self, row: int) -> None:
        """resume-next-session: the halt tripped at session `row` ends at the next session."""
        self._resume_row = row + 1
        if row + 1 < len(self.bars.dates):
            self.trips[-1].resumed_at = self.bars.dates[row + 1]

    def _resume(self, row: int) -> None:
        self._resume_row = None
        self.halt = None

    def _count(self, blocks: list[Block]) -> None:
        for block in blocks:
            self.blocks[block.rule] = self.blocks.get(block.rule, 0) + 1

    def _record(self, order: Order, fills: list[Fill]) -> None:
        self._keep(order, fills)
        self.guard = guard.after_fills(self.guard, [(f.symbol, f.ts_event) for f in fills])

    def _keep(self, order: Order, fills: list[Fill]) -> None:
        """The broker's answer to an order, kept in the book's lists (the guard is told apart)."""
        self.orders.append(order)
        for fill in fills:
            self.fills.append(fill)
            self.traded_notional += fill.qty * fill.price


class _BookLedger:
    """A book's records kept in its lists (the replay also commits each order to the journal
    through `before_submit`): the account cycle's Ledger for backtests and replays."""

    def __init__(self, book: Book) -> None:
        self.book = book

    def commit(self, orders: list[Order], state: guard.GuardState, now: datetime,
               books: BookState | None = None, notes: Sequence[Event] = ()) -> None:
        """The replay calls this inside the transaction of its whole cycle (the orders, the
        books' state here, the notes when the book's lists are flushed)."""
        if self.book.before_submit is not None:
            for order in orders:
                self.book.before_submit(order)
        if books is not None and self.book.on_book_state is not None:
            self.book.on_book_state(books)
        self.book.events.extend(notes)

    def record(self, order: Order, fills: list[Fill]) -> None:
        book = self.book
        book.orders.append(order)
        for fill in fills:
            book.fills.append(fill)
            book.traded_notional += fill.qty * fill.price

    def withdraw(self, order: Order) -> None:
        """Never sent: the journal's row is canceled; the book's orders are what was sent."""
        if self.book.before_submit is not None:
            self.book.before_submit(order)

    def event(self, event: Event) -> None:
        self.book.events.append(event)

    def halt(self, rule: str, reason: str, at: datetime, value: float, limit: float) -> bool:
        book = self.book
        if book.halt or book.breakers == "off":
            return False
        book.trip(rule, reason, at, value=value, limit=limit)
        if book.breakers == "resume-next-session":
            book._resume_after(book.bars.index_of(at.date()))
        return True

    def save_guard(self, state: guard.GuardState, now: datetime) -> None:
        return None  # a replay keeps it with each closing mark
