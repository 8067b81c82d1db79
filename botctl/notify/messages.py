"""What a notification says: short, readable at a glance, with the command to look further.

Pure: records in, `Message`s out. Times are shown in New York time (the market's), each
message says when it happened, and numbers say what they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from botctl.records import SEVERITIES, Event, Order
from botctl.spec.notify import ORDERS_TYPE, SUMMARY_TYPE

NEW_YORK = ZoneInfo("America/New_York")
MAX_BODY = 3500  # under every common service's limit (Telegram: 4096)


@dataclass
class Message:
    about: str  # the event type (or orders.rebalance / daily.summary) it reports
    severity: str
    title: str
    body: str
    account: str | None = None
    attempts: int = 0
    queued_at: float = 0.0  # monotonic

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)


def when(ts: datetime) -> str:
    return f"{ts.astimezone(NEW_YORK):%Y-%m-%d %H:%M} ET"


def _label(kind: str | None) -> str:
    return "[replay] " if kind == "replay" else ""


def look_further(event: Event) -> str:
    account = f" --account {event.account}" if event.account else ""
    if event.type in ("breaker.tripped", "first_cycle.halted", "kill.requested", "kill.orders_canceled", "kill.flatten"):
        target = event.account or "ACCOUNT"
        return f"botctl status; botctl tail{account} --severity WARN; when it is safe: botctl resume {target}"
    if event.type.startswith("reconcile.") or event.type in ("broker.unavailable", "cycle.failed", "cycle.owed"):
        return f"botctl status; botctl tail{account} --severity WARN"
    return f"botctl tail{account}"


def event_message(event: Event, kind: str | None) -> Message:
    where = " · ".join(x for x in (event.account, event.symbol) if x)
    title = f"{_label(kind)}{event.severity} {event.type}" + (f" · {where}" if where else "")
    numbers = [f"{k}: {v}" for k, v in event.details.items() if isinstance(v, (int, float, str)) and k != "symbols"]
    lines = [event.message or event.type, *numbers, f"at {when(event.ts_event)}", f"more: {look_further(event)}"]
    return Message(event.type, event.severity, title, _cut("\n".join(lines)), account=event.account)


def _order_line(order: Order) -> str:
    verb = "bought" if order.side == "buy" else "sold"
    if order.status == "filled" and order.avg_fill_price is not None:
        return f"{verb} {order.filled_qty:g} {order.symbol} at ${order.avg_fill_price:,.2f} (${order.filled_qty * order.avg_fill_price:,.0f})"
    approx = f" (~${order.qty * order.ref_price:,.0f})" if order.ref_price else ""
    why = f": {order.reject_reason}" if order.reject_reason else ""
    return f"{order.side} {order.qty:g} {order.symbol}{approx}: {order.status}{why}"


def orders_message(account: str, orders: list[Order], kind: str | None) -> Message:
    """One message for a rebalance's orders, in the order they were sent (sells first)."""
    counts: dict[str, int] = {}
    for order in orders:
        counts[order.status] = counts.get(order.status, 0) + 1
    trouble = counts.get("rejected", 0) + counts.get("unknown", 0)
    severity = "WARN" if trouble else "INFO"
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    first = min(o.ts_init for o in orders)
    title = f"{_label(kind)}{account}: rebalance, {len(orders)} order(s) ({status})"
    lines = [_order_line(o) for o in orders]
    lines += [f"at {when(first)}", f"more: botctl tail --account {account}"]
    return Message(ORDERS_TYPE, severity, title, _cut("\n".join(lines)), account=account)


@dataclass(frozen=True)
class DaySummary:
    account: str
    day: date
    as_of: datetime
    nav: float
    previous_nav: float | None
    benchmark: str
    benchmark_return: float | None
    fills: int
    warnings: int  # WARN and worse events of the day
    errors: int  # ERROR and worse


def summary_message(s: DaySummary, kind: str | None) -> Message:
    lines = [f"NAV ${s.nav:,.2f} (as of {when(s.as_of)})"]
    if s.previous_nav:
        pnl = s.nav - s.previous_nav
        pct = pnl / s.previous_nav
        bench = (f"{s.benchmark} {s.benchmark_return:+.2%}" if s.benchmark_return is not None
                 else f"{s.benchmark}: no close for the day")
        lines.append(f"day P&L {'+' if pnl >= 0 else '-'}${abs(pnl):,.2f} ({pct:+.2%}) vs {bench}")
    else:
        lines.append("day P&L: no earlier close in the journal")
    lines.append(f"trades: {s.fills} fill(s)")
    lines.append(f"warnings: {s.warnings}" + (f", of which {s.errors} error(s)" if s.errors else ""))
    lines.append(f"more: botctl status; botctl tail --account {s.account} --severity WARN")
    severity = "WARN" if s.errors else "INFO"
    title = f"{_label(kind)}{s.account}: daily summary {s.day}"
    return Message(SUMMARY_TYPE, severity, title, "\n".join(lines), account=s.account)


def digest_message(held: list[Message], why: str) -> Message:
    """Messages held back (quiet hours, rate limit) as one."""
    worst = max(held, key=lambda m: m.rank)
    lines = [f"{len(held)} message(s) held back ({why}):"]
    lines += [f"- {m.title}" for m in held[:20]]
    if len(held) > 20:
        lines.append(f"- ... and {len(held) - 20} more")
    lines.append("more: botctl tail --severity WARN")
    return Message("digest", worst.severity, f"{len(held)} notification(s) held back", _cut("\n".join(lines)))


def test_message(destination: str) -> Message:
    return Message("notify.test", "INFO", "botctl test message",
                   f"This is a test from botctl to '{destination}': notifications reach you here.")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_BODY else text[: MAX_BODY - 20] + "\n... (cut)"
