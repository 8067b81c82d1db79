"""The ports the runtime talks through. Each has an in-memory implementation that is
production code (SimBroker, SimClock, file data), used by backtests, replays and tests."""

from __future__ import annotations

from datetime import datetime
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


class Broker(Protocol):
    """What the runtime needs from a broker. Adapters translate foreign types and errors at
    this edge: nothing past it sees an SDK model or a raw HTTP error."""

    fractional: bool

    def account(self) -> AccountState: ...

    def positions(self) -> dict[str, BrokerPosition]: ...

    def submit(self, order: Order, now: datetime) -> tuple[Order, list[Fill]]:
        """Send an order already committed to the journal; return its new state and any fills."""
        ...

    def get_order(self, client_order_id: str) -> Order | None: ...

    def open_orders(self) -> list[Order]: ...

    def cancel(self, client_order_id: str, now: datetime) -> Order | None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep_until(self, when: datetime) -> None: ...
