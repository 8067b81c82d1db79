"""msgspec records shared by every layer: what the engine decides, what brokers report, what the
journal stores and what status/tail/tui read back.

Naming follows one rule: commands are imperative (SubmitOrder), facts are past tense or nouns
(Fill, NavSnapshot, Event). Timestamps say which clock: `ts_event` is when the thing happened
in market time (simulated or real), `ts_init` is when botctl created the record.
All timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

Side = Literal["buy", "sell"]
RunKind = Literal["backtest", "replay", "paper", "live", "manual"]  # manual: an operator action with no bot running
RunStatus = Literal["running", "finished", "failed", "stopped"]
OrderStatus = Literal[
    "pending",  # journaled, not yet acknowledged by the broker
    "accepted",
    "partially_filled",
    "filled",
    "canceled",
    "rejected",
    "expired",
    "unknown",  # the send was ambiguous; must be resolved before anything else
]
OPEN_ORDER_STATUSES: tuple[str, ...] = ("pending", "accepted", "partially_filled", "unknown")
Severity = Literal["INFO", "WARN", "ERROR", "CRITICAL"]
SEVERITIES: tuple[str, ...] = ("INFO", "WARN", "ERROR", "CRITICAL")


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every persisted record. msgspec passes `frozen` on to subclasses; they say it
    again so that type checkers, which do not inherit it, see them as frozen too."""


class Run(Record, frozen=True):
    run_id: str
    kind: RunKind
    plan_id: str
    started_at: datetime
    status: RunStatus = "running"
    pid: int | None = None
    ended_at: datetime | None = None
    heartbeat_at: datetime | None = None
    # Market-time bounds of a backtest or replay; None for paper/live.
    period_start: str | None = None
    period_end: str | None = None
    note: str = ""


class SubmitOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An engine command: bring `symbol` toward a target by trading `qty` shares."""

    account: str
    symbol: str
    side: Side
    qty: float
    ref_price: float
    reason: str = "rebalance"


class CancelOrder(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    client_order_id: str
    reason: str = ""


class Order(Record, frozen=True):
    client_order_id: str
    run_id: str
    account: str
    symbol: str
    side: Side
    qty: float
    status: OrderStatus
    ts_init: datetime
    ts_event: datetime
    order_type: Literal["market"] = "market"
    reason: str = "rebalance"
    ref_price: float | None = None
    filled_qty: float = 0.0
    avg_fill_price: float | None = None
    broker_order_id: str | None = None
    reject_reason: str | None = None


class Fill(Record, frozen=True):
    fill_id: str
    client_order_id: str
    run_id: str
    account: str
    symbol: str
    side: Side
    qty: float
    price: float  # the price returns are computed from: total-return adjusted in backtests and replays
    commission: float
    ts_event: datetime
    # What the exchange printed for this fill: shown to people. Equal to `price` for a real
    # broker's fills; None where unknown (fills journaled before it was recorded).
    as_traded_price: float | None = None


def traded_qty(qty: float, price: float, as_traded_price: float | None) -> float:
    """Shares as the exchange counted them: a total-return adjusted fill's quantity is in
    adjusted shares, so at the printed price the same money buys qty * price / as_traded."""
    if as_traded_price is None or as_traded_price <= 0:
        return qty
    return qty * price / as_traded_price


def fill_text(fill: Fill, digits: int = 4) -> str:
    """`QTY SYMBOL @ PRICE` as people should read a fill: what traded (shares and price as the
    exchange printed them), saying so, with the adjusted quantity and price used for returns
    beside it when they differ (the money is the same)."""
    if fill.as_traded_price is None:
        return (f"{fill.qty:.4f} {fill.symbol} @ {fill.price:,.{digits}f} "
                "(as journaled; as-traded price not recorded)")
    text = (f"{traded_qty(fill.qty, fill.price, fill.as_traded_price):.4f} {fill.symbol} "
            f"@ {fill.as_traded_price:,.{digits}f} as traded")
    if abs(fill.as_traded_price - fill.price) > 1e-9 * max(1.0, abs(fill.price)):
        text += f" (adjusted: {fill.qty:.4f} @ {fill.price:,.{digits}f})"
    return text


class Position(Record, frozen=True):
    """A holding as marked at `ts_event`."""

    run_id: str
    account: str
    ts_event: datetime
    symbol: str
    qty: float
    avg_price: float
    price: float
    value: float


class NavSnapshot(Record, frozen=True):
    run_id: str
    account: str
    ts_event: datetime
    nav: float
    cash: float
    gross_exposure: float
    leverage: float


class Event(Record, frozen=True):
    ts_event: datetime
    subsystem: str
    type: str
    severity: Severity = "INFO"
    run_id: str | None = None
    account: str | None = None
    symbol: str | None = None
    message: str = ""
    details: dict[str, Any] = {}


class Control(Record, frozen=True):
    """The persisted halt flag of one account ('*' means every account)."""

    account: str
    halted: bool
    reason: str
    since: datetime
    who: str
    flatten: bool = False
    acked_at: datetime | None = None


SignalDirection = Literal["long", "short"]


class Signal(Record, frozen=True):
    """One external signal as journaled (botctl.feeds), before anything may use it.

    `signal_id` is the sender's id, unique within `source` (the journal's own row id is the
    table's `id`). `ts_event` is when the sender says the thing happened; `ts_received` when
    botctl first read it (for a backtest's file read, equal to ts_event: the declared latency
    stands in). `payload_hash` is the SHA-256 of the raw payload the signal came from, so a
    record can be matched to what was sent without keeping (possibly private) payloads.
    """

    source: str
    signal_id: str
    ts_event: datetime
    ts_received: datetime
    symbol: str
    kind: str
    score: float
    direction: SignalDirection | None = None
    expires_at: datetime | None = None
    payload_hash: str = ""
