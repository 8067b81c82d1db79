"""The ports the runtime talks through. Each has an in-memory implementation that is
production code (SimBroker, SimClock, file data), used by backtests, replays and tests."""

from __future__ import annotations

from datetime import datetime
from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

from botctl.records import Fill, Order


class AccountState(msgspec.Struct, frozen=True):
    cash: float
    equity: float
    buying_power: float


class BrokerPosition(msgspec.Struct, frozen=True):
    symbol: str
    qty: float
    avg_price: float
    price: float | None = None  # the broker's current mark, when it gives one


class Broker(Protocol):
    """What the runtime needs from a broker. Adapters translate foreign types and errors at
    this edge: nothing past it sees an SDK model or a raw HTTP error."""

    fractional: bool

    def account(self) -> AccountState: ...

    def positions(self) -> dict[str, BrokerPosition]: ...

    def submit(self, order: Order, now: datetime) -> tuple[Order, list[Fill]]:
        """Send an order already committed to the journal; return its new state and any fills."""
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
