"""The built-in simulated broker. Production code: backtests, replays and tests trade with it.

Market orders fill at the next bar's open (`fill: open`, the default) or at the signal bar's
close (`fill: close`), moved against the trader by `slippage_bps`, charged `commission_bps`
of notional. Buying power follows a margin multiplier: gross exposure after an order may not
exceed `margin` x equity, so 1.25x leverage works at the default 2x and more is rejected with
the numbers. Cash earns nothing; borrowed cash (negative cash) accrues `borrow_rate` a year.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from botctl.ports import AccountState, BrokerPosition
from botctl.records import OPEN_ORDER_STATUSES, Fill, Order
from botctl.spec.model import SimSpec


NEW_YORK = ZoneInfo("America/New_York")


class SimBroker:
    def __init__(self, cash: float, settings: SimSpec, *, account: str = "", run_id: str = "") -> None:
        self.settings = settings
        # Whose orders the broker places itself (close_all): a kill's closing orders carry
        # the account and run from the moment they are placed, whenever they fill.
        self.account_id, self.run_id = account, run_id
        self.fractional = settings.fractional
        self.cash = float(cash)
        self.qty: dict[str, float] = {}
        self.avg_price: dict[str, float] = {}
        self.last_price: dict[str, float] = {}
        self.orders: dict[str, Order] = {}
        self._pending: list[str] = []
        self._pending_qty: dict[str, float] = {}  # signed shares of pending orders, per symbol
        self._fill_seq = 0
        # Per symbol, what turns this broker's prices into the prices that traded (close /
        # adj_close of the bar being filled, set by the caller with the prices): each fill
        # records its as-traded price for people; returns keep using `price`.
        self.as_traded: Mapping[str, float] = {}
        # (equity, gross exposure once every pending order fills) at the marked prices, kept
        # up to date order by order: recomputing it per order is quadratic in a big book.
        self._exposure: tuple[float, float] | None = None

    # --- the Broker port ---------------------------------------------------------------------

    def account(self) -> AccountState:
        equity = self.equity()
        gross = sum(abs(q) * self.last_price.get(s, 0.0) for s, q in self.qty.items())
        return AccountState(cash=self.cash, equity=equity, buying_power=max(0.0, self.settings.margin * equity - gross))

    def positions(self) -> dict[str, BrokerPosition]:
        return {s: BrokerPosition(s, q, self.avg_price.get(s, 0.0), self.last_price.get(s))
                for s, q in self.qty.items() if q}

    def get_order(self, client_order_id: str, template: Order | None = None) -> Order | None:
        return self.orders.get(client_order_id)

    def fills_for(self, order: Order) -> list[Fill]:
        return []  # the simulator reports every fill when it happens

    def remember_fills(self, client_order_id: str, filled_qty: float, notional: float) -> None:
        return None

    def open_orders(self) -> list[Order]:
        return [self.orders[c] for c in self._pending]

    def cancel(self, client_order_id: str, now: datetime) -> Order | None:
        order = self.orders.get(client_order_id)
        if order is None or order.status not in OPEN_ORDER_STATUSES:
            return order
        self._unpend(order)
        return self._set(order, status="canceled", ts_event=now)

    def cancel_all(self, now: datetime) -> int:
        pending = list(self._pending)
        for client_id in pending:
            self.cancel(client_id, now)
        return len(pending)

    def is_open(self, now: datetime) -> bool:
        """Within an XNYS session (outside the calendar's years: not knowably open)."""
        from botctl.adapters.calendar import sessions
        from botctl.errors import DataError

        day = now.astimezone(NEW_YORK).date()
        try:
            return any(s.open <= now < s.close for s in sessions(day, day))
        except DataError:
            return False

    def close_all(self, now: datetime) -> list[tuple[Order, list[Fill]]]:
        out = []
        for symbol, qty in sorted(self.qty.items()):
            if not qty:
                continue
            # The account in the id: several accounts halted at one instant close the same symbols.
            order = Order(client_order_id=f"close-{self.account_id + '-' if self.account_id else ''}"
                                          f"{now:%Y%m%dT%H%M%S%f}-{symbol}", run_id=self.run_id,
                          account=self.account_id, symbol=symbol,
                          side="sell" if qty > 0 else "buy", qty=abs(qty), status="pending", ts_init=now, ts_event=now,
                          reason="flatten", ref_price=self.last_price.get(symbol) or self.avg_price.get(symbol))
            out.append(self.submit(order, now))
        return out

    def submit(self, order: Order, now: datetime) -> tuple[Order, list[Fill]]:
        if order.client_order_id in self.orders:  # idempotent, like a broker's unique client id
            return self.orders[order.client_order_id], []
        price = order.ref_price
        if price is None or not math.isfinite(price) or price <= 0:
            return self._set(order, status="rejected", ts_event=now, reject_reason="no reference price"), []
        if order.symbol not in self.last_price:
            # A symbol never marked is valued at its reference price, so pending buys in it
            # count toward buying power instead of as $0.
            self.last_price[order.symbol] = price
            self._exposure = None
        if order.side == "sell" and not self._covered(order):
            held = self.qty.get(order.symbol, 0.0) + self._pending_delta(order.symbol)
            return self._set(order, status="rejected", ts_event=now,
                             reject_reason=f"sell of {order.qty:g} {order.symbol} exceeds the {held:g} held (no short selling)"), []
        limit = self._buying_power_problem(order, price)
        if limit:
            return self._set(order, status="rejected", ts_event=now, reject_reason=limit), []
        accepted = self._set(order, status="accepted", ts_event=now)
        self._pend(accepted)
        if self.settings.fill == "close":
            return self._fill(accepted, price, now)
        return accepted, []

    # --- driving the simulation ----------------------------------------------------------------

    def on_open(self, open_prices: dict[str, float], now: datetime) -> list[tuple[Order, list[Fill]]]:
        """Fill pending market orders at this bar's open; cancel those whose symbol has no bar."""
        # Every pending order leaves the book here, and the account is marked again before the
        # next order is judged: the exposure is summed afresh then, not kept up fill by fill.
        self._exposure = None
        out: list[tuple[Order, list[Fill]]] = []
        for client_id in list(self._pending):
            order = self.orders[client_id]
            price = open_prices.get(order.symbol)
            if price is None or not math.isfinite(price) or price <= 0:
                self._unpend(order)
                out.append((self._set(order, status="canceled", ts_event=now, reject_reason="no bar to fill at"), []))
                continue
            out.append(self._fill(order, price, now))
        return out

    def mark(self, prices: dict[str, float], as_traded: Mapping[str, float] | None = None) -> None:
        self._exposure = None
        if as_traded is not None:
            self.as_traded = as_traded
        # NaN, infinite and non-positive prices are no marks: `0 < p < inf` is False for each.
        # Checked in numpy first (a cycle marks every symbol of its universe): usually all are good.
        try:
            values = np.fromiter(prices.values(), dtype=float, count=len(prices))
        except TypeError:  # a None among them
            values = np.array(list(prices.values()), dtype=float)  # None -> NaN
        if ((values > 0) & (values < math.inf)).all():
            self.last_price.update(prices)
        else:
            self.last_price.update({s: p for s, p in prices.items() if p is not None and 0 < p < math.inf})

    def accrue_borrow(self, days: float) -> float:
        """Charge interest on borrowed cash for `days` calendar days; returns the charge."""
        if self.cash >= 0 or self.settings.borrow_rate == 0:
            return 0.0
        charge = -self.cash * self.settings.borrow_rate * days / 365.0
        self.cash -= charge
        self._exposure = None
        return charge

    def equity(self) -> float:
        return self.cash + sum(q * self.last_price.get(s, self.avg_price.get(s, 0.0)) for s, q in self.qty.items())

    # --- internals -------------------------------------------------------------------------------

    def _set(self, order: Order, **changes) -> Order:
        updated = msgspec.structs.replace(order, **changes)
        self.orders[order.client_order_id] = updated
        return updated

    def _price(self, symbol: str) -> float:
        return self.last_price.get(symbol, self.avg_price.get(symbol, 0.0))

    def _pending_delta(self, symbol: str) -> float:
        return self._pending_qty.get(symbol, 0.0)

    @staticmethod
    def _signed(order: Order) -> float:
        return order.qty if order.side == "buy" else -order.qty

    def _pend(self, order: Order) -> None:
        symbol = order.symbol
        before = self.qty.get(symbol, 0.0) + self._pending_delta(symbol)
        self._pending.append(order.client_order_id)
        self._pending_qty[symbol] = self._pending_delta(symbol) + self._signed(order)
        if self._exposure is not None:
            equity, gross = self._exposure
            self._exposure = (equity, gross + (abs(before + self._signed(order)) - abs(before)) * self._price(symbol))

    def _unpend(self, order: Order) -> None:
        """Take an order off the pending list (filled or canceled)."""
        symbol = order.symbol
        before = self.qty.get(symbol, 0.0) + self._pending_delta(symbol)
        self._pending.remove(order.client_order_id)
        left = self._pending_delta(symbol) - self._signed(order)
        if left == 0.0:  # nothing pending in it: kept, every later re-sum of exposure would walk it
            self._pending_qty.pop(symbol, None)
        else:
            self._pending_qty[symbol] = left
        if self._exposure is not None:
            equity, gross = self._exposure
            self._exposure = (equity, gross + (abs(before - self._signed(order)) - abs(before)) * self._price(symbol))

    def _exposure_now(self) -> tuple[float, float]:
        if self._exposure is None:
            equity = self.cash + sum(q * self._price(s) for s, q in self.qty.items())
            gross = sum(abs(self.qty.get(s, 0.0) + self._pending_delta(s)) * self._price(s)
                        for s in set(self.qty) | set(self._pending_qty))
            self._exposure = (equity, gross)
        return self._exposure

    def _covered(self, order: Order) -> bool:
        return order.qty <= self.qty.get(order.symbol, 0.0) + self._pending_delta(order.symbol) + 1e-9

    def _buying_power_problem(self, order: Order, price: float) -> str | None:
        """Gross exposure once every pending order and this one fill may not exceed margin x
        equity, valuing the order's symbol at its reference price and the rest at their marks."""
        if order.side == "sell":
            return None
        symbol = order.symbol
        equity, gross = self._exposure_now()
        held = self.qty.get(symbol, 0.0)
        projected = held + self._pending_delta(symbol)
        mark = self._price(symbol)
        equity += held * (price - mark)
        gross += abs(projected + order.qty) * price - abs(projected) * mark
        allowed = self.settings.margin * equity
        if gross > allowed * (1 + 1e-9):
            return (f"insufficient buying power: gross exposure would be ${gross:,.2f}, "
                    f"over {self.settings.margin:g}x equity ${equity:,.2f} = ${allowed:,.2f}")
        return None

    def restore_fill(self, fill: Fill) -> None:
        """Book a fill made earlier (a journaled one) into cash and holdings, exactly as it
        was booked when it happened: what rebuilding the broker from the journal needs for
        the fills its last mark does not hold yet."""
        self._exposure = None
        self._book(fill.symbol, fill.side, fill.qty, fill.price, fill.commission)
        self.last_price.setdefault(fill.symbol, fill.price)

    def _book(self, symbol: str, side: str, qty: float, fill_price: float, commission: float) -> None:
        """Cash and holdings after one fill (the one place their arithmetic is written)."""
        notional = qty * fill_price
        held = self.qty.get(symbol, 0.0)
        if side == "buy":
            self.cash -= notional + commission
            total = held + qty
            self.avg_price[symbol] = (held * self.avg_price.get(symbol, 0.0) + notional) / total if total else 0.0
            self.qty[symbol] = total
        else:
            self.cash += notional - commission
            remaining = held - qty
            if abs(remaining) < 1e-9:
                self.qty.pop(symbol, None)
                self.avg_price.pop(symbol, None)
            else:
                self.qty[symbol] = remaining

    def _fill(self, order: Order, price: float, now: datetime) -> tuple[Order, list[Fill]]:
        known_price = order.symbol in self.last_price
        self._unpend(order)
        cash_before, held_before = self.cash, self.qty.get(order.symbol, 0.0)
        slip = self.settings.slippage_bps / 1e4
        fill_price = price * (1 + slip) if order.side == "buy" else price * (1 - slip)
        commission = order.qty * fill_price * self.settings.commission_bps / 1e4
        self._book(order.symbol, order.side, order.qty, fill_price, commission)
        self.last_price.setdefault(order.symbol, price)
        if self._exposure is not None:
            if known_price:  # pending became held: _unpend took it off gross, the holding puts it back
                equity, gross = self._exposure
                held_after, pending = self.qty.get(order.symbol, 0.0), self._pending_delta(order.symbol)
                mark = self._price(order.symbol)
                self._exposure = (equity + (self.cash - cash_before) + (held_after - held_before) * mark,
                                  gross + (abs(held_after + pending) - abs(held_before + pending)) * mark)
            else:
                self._exposure = None
        self._fill_seq += 1
        fill = Fill(
            fill_id=f"{order.client_order_id}-f{self._fill_seq}", client_order_id=order.client_order_id,
            run_id=order.run_id, account=order.account, symbol=order.symbol, side=order.side,
            qty=order.qty, price=fill_price, commission=commission, ts_event=now,
            as_traded_price=fill_price * factor if (factor := self.as_traded.get(order.symbol)) else None,
        )
        filled = self._set(order, status="filled", ts_event=now, filled_qty=order.qty, avg_fill_price=fill_price)
        return filled, [fill]
