"""The Alpaca broker adapter: alpaca-py's TradingClient behind botctl's Broker port.

Everything foreign stops here. Alpaca models become botctl records; HTTP and SDK errors
become BrokerTransient / BrokerRejected / BrokerAuth; every call is bounded in time (alpaca-py
sets no timeout) and paced under Alpaca's 200 requests/minute. The SDK's own blind retry is
turned off: a retried POST could place an order twice, so an ambiguous send (timeout, 5xx,
dropped connection) is resolved by looking the order up by its client id instead.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar, cast

import msgspec
import requests

from botctl.errors import BrokerAuth, BrokerError, BrokerRejected, BrokerTransient
from botctl.ports import AccountState, BrokerPosition
from botctl.records import Fill, Order, OrderStatus

if TYPE_CHECKING:
    from alpaca.trading.models import ClosePositionResponse, Clock, Position, TradeAccount

T = TypeVar("T")

TIMEOUT_SECONDS = 10.0
RATE_LIMIT_PER_MINUTE = 200
RETRIES = 4

_STATUS: dict[str, OrderStatus] = {
    "new": "accepted", "accepted": "accepted", "pending_new": "accepted", "accepted_for_bidding": "accepted",
    "partially_filled": "partially_filled", "filled": "filled", "done_for_day": "expired", "canceled": "canceled",
    "expired": "expired", "replaced": "canceled", "pending_cancel": "accepted", "pending_replace": "accepted",
    "rejected": "rejected", "suspended": "accepted", "stopped": "accepted", "calculated": "accepted", "held": "accepted",
}


class _BoundedSession(requests.Session):
    """A requests session whose every call has a timeout (alpaca-py passes none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, **kwargs):  # noqa: D102
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)


class _Pacer:
    """At most `limit` calls in any 60 s window, shared by every call of one account."""

    def __init__(self, limit: int, sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit = limit
        self.sleep = sleep
        self.calls: deque[float] = deque()
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            while self.calls and now - self.calls[0] >= 60:
                self.calls.popleft()
            if len(self.calls) >= self.limit:
                self.sleep(60 - (now - self.calls[0]))
            self.calls.append(time.monotonic())


def classify(exc: Exception, what: str) -> BrokerError:
    """Translate an SDK or HTTP failure into botctl's broker errors (never echoing headers)."""
    from alpaca.common.exceptions import APIError

    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, APIError):
        status = exc.status_code
        try:
            body = json.loads(str(exc))
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        message = str(body.get("message") or str(exc)[:200] or "no message")
        code = body.get("code")
        text = f"{what}: HTTP {status} {message}" + (f" (code {code})" if code else "")
        if status == 401 or (status == 403 and code is None):
            return BrokerAuth(text)
        if status is None or status in (408, 429) or 500 <= status <= 599:
            return BrokerTransient(text)
        return BrokerRejected(text)
    if isinstance(exc, requests.exceptions.InvalidHeader):  # e.g. a key with a stray newline
        return BrokerAuth(f"{what}: the API key or secret is malformed (check the environment variables)")
    if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
        return BrokerTransient(f"{what}: {type(exc).__name__} (no answer from the broker)")
    if isinstance(exc, requests.RequestException):
        return BrokerTransient(f"{what}: {type(exc).__name__}")
    if isinstance(exc, (ValueError, KeyError, TypeError)):  # an answer the SDK could not parse
        return BrokerTransient(f"{what}: unreadable answer ({type(exc).__name__})")
    return BrokerError(f"{what}: {type(exc).__name__}")


class AlpacaBroker:
    fractional = True

    def __init__(self, api_key: str, secret_key: str, *, paper: bool, base_url: str | None = None,
                 timeout: float = TIMEOUT_SECONDS, retries: int = RETRIES, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from alpaca.trading.client import TradingClient

        self.client = TradingClient(api_key, secret_key, paper=paper, url_override=base_url)
        self.client._session = _BoundedSession(timeout)
        self.client._retry = 0  # we retry ourselves, safely
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.pacer = _Pacer(RATE_LIMIT_PER_MINUTE, sleep)
        self._fills_seen: dict[str, tuple[float, float]] = {}  # client id -> (qty, notional) reported

    # --- plumbing ---------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], *, retry: bool = True) -> T:
        attempt = 0
        while True:
            self.pacer.wait()
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - every failure is classified right here
                error = classify(exc, what)
                if not isinstance(error, BrokerTransient) or not retry or attempt >= self.retries:
                    raise error from None
                attempt += 1
                # Exponential backoff with full jitter: many bots retrying in step would
                # hammer a struggling broker at the same instants.
                self.sleep(random.uniform(0, self.backoff * 2 ** attempt))

    # --- the Broker port ----------------------------------------------------------------------

    def account(self) -> AccountState:
        # The client is built with raw_data off: it answers models, never the raw dicts its
        # return types also allow (hence the casts).
        acct = cast("TradeAccount", self._call("get account", self.client.get_account))
        return AccountState(cash=float(acct.cash or 0), equity=float(acct.equity or 0),
                            buying_power=float(acct.buying_power or 0))

    def positions(self) -> dict[str, BrokerPosition]:
        rows = cast("list[Position]", self._call("get positions", self.client.get_all_positions))
        out: dict[str, BrokerPosition] = {}
        for p in rows:
            qty = float(p.qty) * (-1 if str(getattr(p.side, "value", p.side)) == "short" else 1)
            current = getattr(p, "current_price", None)
            price = float(current) if current not in (None, "") else None
            out[p.symbol] = BrokerPosition(p.symbol, qty, float(p.avg_entry_price or 0), price)
        return out

    def mark(self, prices: dict[str, float], as_traded: Mapping[str, float] | None = None) -> None:
        return None  # the broker values positions itself

    def is_open(self, now: datetime) -> bool:
        """Alpaca's own clock (holidays, early closes), not `now`: the broker decides."""
        return bool(cast("Clock", self._call("get clock", self.client.get_clock)).is_open)

    def clock(self):
        return self._call("get clock", self.client.get_clock)

    def get_order(self, client_order_id: str, template: Order | None = None) -> Order | None:
        from alpaca.common.exceptions import APIError

        def lookup():
            try:
                return self.client.get_order_by_client_id(client_order_id)
            except APIError as exc:
                if exc.status_code == 404:
                    return None
                raise

        found = self._call("look up order", lookup)
        return None if found is None else self._to_order(found, template)

    def open_orders(self) -> list[Order]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        rows = self._call("list open orders",
                          lambda: self.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)))
        return [self._to_order(o, None) for o in rows]

    def cancel(self, client_order_id: str, now: datetime) -> Order | None:
        order = self.get_order(client_order_id)
        if order is None or order.broker_order_id is None:
            return order
        broker_order_id = order.broker_order_id
        try:
            self._call("cancel order", lambda: self.client.cancel_order_by_id(broker_order_id))
        except BrokerRejected:
            pass  # no longer cancelable (filled meanwhile): the lookup below says what it became
        return self.get_order(client_order_id)

    def cancel_all(self, now: datetime) -> int:
        result = self._call("cancel all orders", self.client.cancel_orders)
        return len(result or [])

    def close_all(self, now: datetime) -> list[tuple[Order, list[Fill]]]:
        from alpaca.trading.models import Order as AlpacaOrder

        result = cast("list[ClosePositionResponse] | None",
                      self._call("close all positions", lambda: self.client.close_all_positions(cancel_orders=True)))
        out: list[tuple[Order, list[Fill]]] = []
        for response in result or []:
            if isinstance(response.body, AlpacaOrder):  # a symbol Alpaca could not close has no order
                out.append(self._with_fills(msgspec.structs.replace(self._to_order(response.body, None),
                                                                    reason="flatten")))
        return out

    def submit(self, order: Order, now: datetime) -> tuple[Order, list[Fill]]:
        """Send a journaled order exactly once. A duplicate client id means it is already at the
        broker; an ambiguous failure is resolved by lookup, never by a blind resend."""
        from alpaca.common.exceptions import APIError
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        request = MarketOrderRequest(symbol=order.symbol, qty=round(order.qty, 9),
                                     side=OrderSide.BUY if order.side == "buy" else OrderSide.SELL,
                                     time_in_force=TimeInForce.DAY, client_order_id=order.client_order_id)
        for attempt in range(self.retries + 1):
            self.pacer.wait()
            try:
                placed = self.client.submit_order(request)
                return self._with_fills(self._to_order(placed, order))
            except Exception as exc:  # noqa: BLE001
                if isinstance(exc, APIError) and exc.status_code == 422 and "unique" in str(exc):
                    existing = self.get_order(order.client_order_id, order)
                    if existing is not None:
                        return self._with_fills(existing)
                error = classify(exc, f"submit {order.client_order_id}")
                if not isinstance(error, BrokerTransient):
                    if isinstance(error, BrokerRejected):
                        rejected = msgspec.structs.replace(order, status="rejected", ts_event=now,
                                                           reject_reason=str(error)[:300])
                        return rejected, []
                    raise error from None
                existing = self.get_order(order.client_order_id, order)  # did it get through?
                if existing is not None:
                    return self._with_fills(existing)
                if attempt >= self.retries:
                    raise error from None
                self.sleep(random.uniform(0, self.backoff * 2 ** (attempt + 1)))
        raise BrokerTransient(f"submit {order.client_order_id}: gave up")  # pragma: no cover

    def fills_for(self, order: Order) -> list[Fill]:
        """Fills not yet reported for `order` (from the growth of its filled quantity)."""
        return self._with_fills(order)[1]

    # --- translation --------------------------------------------------------------------------

    def _to_order(self, o: Any, template: Order | None) -> Order:
        status = _STATUS.get(str(getattr(o.status, "value", o.status)), "accepted")
        filled = float(o.filled_qty or 0)
        avg = float(o.filled_avg_price) if o.filled_avg_price not in (None, "") else None
        ts = o.updated_at or o.submitted_at or datetime.now(timezone.utc)
        ts = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
        side = str(getattr(o.side, "value", o.side) or "buy")
        if template is not None:
            return msgspec.structs.replace(template, status=status, filled_qty=filled, avg_fill_price=avg,
                                           broker_order_id=str(o.id), ts_event=ts)
        return Order(client_order_id=o.client_order_id, run_id="", account="", symbol=o.symbol,
                     side="sell" if side == "sell" else "buy", qty=float(o.qty or 0), status=status,
                     ts_init=o.created_at or ts, ts_event=ts, filled_qty=filled, avg_fill_price=avg,
                     broker_order_id=str(o.id), reason="broker")

    def _with_fills(self, order: Order) -> tuple[Order, list[Fill]]:
        """Fills are derived from the growth of filled_qty: one Fill per observed increment,
        priced so that the fills' notional adds up to filled_qty x average price."""
        seen_qty, seen_notional = self._fills_seen.get(order.client_order_id, (0.0, 0.0))
        if order.filled_qty <= seen_qty + 1e-12 or order.avg_fill_price is None:
            return order, []
        qty = order.filled_qty - seen_qty
        notional = order.filled_qty * order.avg_fill_price
        self._fills_seen[order.client_order_id] = (order.filled_qty, notional)
        price = (notional - seen_notional) / qty
        fill = Fill(fill_id=f"{order.client_order_id}-{order.filled_qty:.9g}", client_order_id=order.client_order_id,
                    run_id=order.run_id, account=order.account, symbol=order.symbol, side=order.side, qty=qty,
                    price=price, commission=0.0, ts_event=order.ts_event, as_traded_price=price)  # a real print
        return order, [fill]

    def remember_fills(self, client_order_id: str, filled_qty: float, notional: float) -> None:
        """Tell the adapter what the journal already holds, so a restart reports no fill twice."""
        self._fills_seen[client_order_id] = (filled_qty, notional)
