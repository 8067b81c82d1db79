"""The ports the runtime talks through. Each has an in-memory implementation that is
production code (SimBroker, SimClock, file data), used by backtests, replays and tests."""

from __future__ import annotations

from datetime import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import msgspec

from botctl.engine.orders import PlacedOrders
from botctl.errors import BrokerError
from botctl.records import Fill, Order, OrderStatus


class AccountState(msgspec.Struct, frozen=True):
    cash: float
    equity: float
    buying_power: float


class BrokerPosition(msgspec.Struct, frozen=True):
    symbol: str
    qty: float
    avg_price: float
    price: float | None = None  # the broker's current mark, when it gives one


FillRow = tuple[str, str, float, float, datetime, str, float]


class Answers:
    """A broker's answers to orders sent in one go (`Broker.submit_batch`), in sending order.
    The first `len(self)` orders were answered; a batch stops after the first order the broker
    refused or could not place, and the orders after it were not sent. An order whose send
    failed without an answer has status "unknown" and its error is `error`."""

    def __init__(self, statuses: list[OrderStatus], error: BrokerError | None = None) -> None:
        self.statuses = statuses
        self.error = error

    def __len__(self) -> int:
        return len(self.statuses)

    def order(self, i: int) -> Order:
        """The i-th order as answered."""
        raise NotImplementedError

    def fills(self, i: int) -> list[Fill]:
        """The fills the answer to the i-th order reported."""
        raise NotImplementedError

    def records(self) -> list[tuple[Order, list[Fill]]]:
        return [(self.order(i), self.fills(i)) for i in range(len(self))]

    def fill_times(self) -> list[tuple[str, datetime]]:
        """(symbol, time) of every fill, in order."""
        return [(f.symbol, f.ts_event) for i in range(len(self)) for f in self.fills(i)]

    def client_ids(self) -> list[str]:
        return [self.order(i).client_order_id for i in range(len(self))]

    def fill_rows(self) -> list[FillRow]:
        """(symbol, side, qty, price, time, its order's reason, commission) of every fill."""
        return [(f.symbol, f.side, f.qty, f.price, f.ts_event, order.reason, f.commission)
                for order, fills in self.records() for f in fills]


class RecordAnswers(Answers):
    """Answers given as records, one order at a time (a broker over the network)."""

    def __init__(self, answers: list[tuple[Order, list[Fill]]], error: BrokerError | None = None) -> None:
        super().__init__([order.status for order, _ in answers], error)
        self.answers = answers

    def order(self, i: int) -> Order:
        return self.answers[i][0]

    def fills(self, i: int) -> list[Fill]:
        return self.answers[i][1]


FAILED_STATUSES = frozenset({"rejected", "unknown"})  # an order the broker did not take


def submit_each(submit: Callable[[Order, datetime], tuple[Order, list[Fill]]], placed: PlacedOrders,
                now: datetime) -> RecordAnswers:
    """`Broker.submit_batch` for a broker that takes one order at a time: each order's record
    is sent, up to the first the broker refuses or cannot place (a BrokerError: recorded as
    "unknown", its outcome to be looked up, never re-sent blindly)."""
    answers: list[tuple[Order, list[Fill]]] = []
    for order in placed.records():
        try:
            answer, fills = submit(order, now)
        except BrokerError as exc:
            answers.append((msgspec.structs.replace(order, status="unknown", ts_event=now,
                                                    reject_reason=str(exc)[:300]), []))
            return RecordAnswers(answers, exc)
        # The broker's answer keeps what only the journal knows.
        if (answer.run_id, answer.account, answer.reason, answer.ts_init, answer.ref_price) != \
                (order.run_id, order.account, order.reason, order.ts_init, order.ref_price):
            answer = msgspec.structs.replace(answer, run_id=order.run_id, account=order.account, reason=order.reason,
                                             ts_init=order.ts_init, ref_price=order.ref_price)
        if fills and any(f.run_id != order.run_id or f.account != order.account for f in fills):
            fills = [msgspec.structs.replace(f, run_id=order.run_id, account=order.account) for f in fills]
        answers.append((answer, fills))
        if answer.status in FAILED_STATUSES:
            break
    return RecordAnswers(answers)


class Broker(Protocol):
    """What the runtime needs from a broker. Adapters translate foreign types and errors at
    this edge: nothing past it sees an SDK model or a raw HTTP error."""

    fractional: bool

    def account(self) -> AccountState: ...

    def positions(self) -> dict[str, BrokerPosition]: ...

    def submit(self, order: Order, now: datetime) -> tuple[Order, list[Fill]]:
        """Send an order already committed to the journal; return its new state and any fills."""
        ...

    def submit_batch(self, placed: PlacedOrders, now: datetime) -> Answers:
        """Send orders already committed to the journal, in order, up to and including the
        first the broker refuses or cannot place (`Answers`); a broker that takes one order at
        a time does it with `submit_each`."""
        ...

    def get_order(self, client_order_id: str, template: Order | None = None) -> Order | None:
        """The broker's view of an order, merged into `template` (the journal's row) if given."""
        ...

    def fills_for(self, order: Order) -> list[Fill]:
        """Fills of `order` not reported before (by submit or an earlier call)."""
        ...

    def remember_fills(self, client_order_id: str, filled_qty: float, notional: float) -> None:
        """What the journal already holds for an order, so a restart reports no fill twice."""
        ...

    def mark(self, prices: dict[str, float], as_traded: Mapping[str, float] | None = None) -> None:
        """Latest closes, for a broker that values positions with them (the simulator), and
        each symbol's factor from those (adjusted) prices to as-traded ones, for a broker that
        fills at them. A broker that values and fills by itself ignores both."""
        ...

    def open_orders(self) -> list[Order]: ...

    def cancel(self, client_order_id: str, now: datetime) -> Order | None: ...

    def cancel_all(self, now: datetime) -> int:
        """Cancel every open order the broker holds (the journal's and any other); the count."""
        ...

    def is_open(self, now: datetime) -> bool:
        """Is the market open for this broker's orders at `now`? (Alpaca asks its own clock;
        the simulator reads the XNYS calendar.)"""
        ...

    def close_all(self, now: datetime) -> list[tuple[Order, list[Fill]]]:
        """Close every position at market: the closing orders as placed (their `run_id` and
        `account` left for the caller to fill in) and any fills already reported. The orders
        are the broker's own, so they are journaled after the send, not before."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep_until(self, when: datetime) -> None: ...


class MarketData(Protocol):
    """A current price for each symbol (orders are sized and collared at it, against the last
    close). Alpaca: the latest trade; the simulator: the session's open."""

    def latest_prices(self, symbols: Sequence[str], now: datetime) -> dict[str, float]:
        """Usable prices (finite, > 0) of the symbols that have one; the others are left out."""
        ...
