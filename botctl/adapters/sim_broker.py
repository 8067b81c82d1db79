"""The built-in simulated broker. Production code: backtests, replays and tests trade with it.

Market orders fill at the next bar's open (`fill: open`, the default) or at the signal bar's
close (`fill: close`), moved against the trader by `slippage_bps`, charged `commission_bps`
of notional. Buying power follows a margin multiplier: gross exposure after an order may not
exceed `margin` x equity, so 1.25x leverage works at the default 2x and more is rejected with
the numbers. Cash earns nothing; borrowed cash (negative cash) accrues `borrow_rate` a year.

Orders arrive and fill a cycle at a time (`submit_batch`, `fill_open`): each batch is judged
in array arithmetic, and an order record (`records.Order`, `records.Fill`) is made only when
one is asked for (`get_order`, `open_orders`, an answer's `records()`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from botctl.engine.orders import PlacedOrders, running_before
from botctl.ports import AccountState, Answers, BrokerPosition, FillRow, RecordAnswers
from botctl.records import OPEN_ORDER_STATUSES, Fill, Order, OrderStatus
from botctl.spec.model import SimSpec


NEW_YORK = ZoneInfo("America/New_York")


class _Fills:
    """Fills of some rows of a batch, by row: price (NaN for a row not filled), commission,
    as-traded price (NaN when unknown) and the broker's fill number."""

    __slots__ = ("price", "commission", "as_traded", "seq")

    def __init__(self, n: int) -> None:
        self.price = np.full(n, np.nan)
        self.commission = np.zeros(n)
        self.as_traded = np.full(n, np.nan)
        self.seq = np.zeros(n, dtype=np.int64)

    def fill(self, placed: PlacedOrders, i: int, at: datetime) -> Fill:
        batch, price, as_traded = placed.batch, float(self.price[i]), float(self.as_traded[i])
        client_id = placed.ids[i]
        return Fill(fill_id=f"{client_id}-f{self.seq[i]}", client_order_id=client_id, run_id=placed.run_id,
                    account=placed.account, symbol=batch.symbols[i], side=batch.side(i), qty=float(batch.qty[i]),
                    price=price, commission=float(self.commission[i]), ts_event=at,
                    as_traded_price=None if math.isnan(as_traded) else as_traded)


def _order(placed: PlacedOrders, i: int, status: OrderStatus, at: datetime, fills: _Fills | None,
           reject_reason: str | None) -> Order:
    if status == "filled" and fills is not None:
        return placed.record(i, status, at, filled_qty=float(placed.batch.qty[i]),
                             avg_fill_price=float(fills.price[i]), reject_reason=reject_reason)
    return placed.record(i, status, at, reject_reason=reject_reason)


class _Sheet:
    """The broker's copy of one batch of orders and what has become of each."""

    __slots__ = ("placed", "status", "ts_event", "reject", "fills")

    def __init__(self, placed: PlacedOrders, at: datetime) -> None:
        self.placed = placed
        self.status: list[OrderStatus] = ["pending"] * len(placed)
        self.ts_event = [at] * len(placed)
        self.reject: dict[int, str] = {}
        self.fills = _Fills(len(placed))

    def order(self, i: int) -> Order:
        return _order(self.placed, i, self.status[i], self.ts_event[i], self.fills, self.reject.get(i))


class SheetAnswers(Answers):
    """The simulator's answers to the rows of one batch, as they stood when given: the
    records are made only when read."""

    def __init__(self, placed: PlacedOrders, statuses: list[OrderStatus], at: datetime, fills: _Fills,
                 reject: dict[int, str]) -> None:
        super().__init__(statuses)
        self.placed, self.at, self._fills, self.reject = placed, at, fills, reject

    def order(self, i: int) -> Order:
        return _order(self.placed, i, self.statuses[i], self.at, self._fills, self.reject.get(i))

    def fills(self, i: int) -> list[Fill]:
        return [self._fills.fill(self.placed, i, self.at)] if self.statuses[i] == "filled" else []

    def fill_times(self) -> list[tuple[str, datetime]]:
        symbols = self.placed.batch.symbols
        return [(symbols[i], self.at) for i, status in enumerate(self.statuses) if status == "filled"]

    def client_ids(self) -> list[str]:
        return self.placed.ids[: len(self.statuses)]

    def fill_rows(self) -> list[FillRow]:
        batch, fills, at = self.placed.batch, self._fills, self.at
        rows = [i for i, status in enumerate(self.statuses) if status == "filled"]
        return [(batch.symbols[i], batch.side(i), q, p, at, batch.reasons[i], c) for i, q, p, c in
                zip(rows, batch.qty[rows].tolist(), fills.price[rows].tolist(), fills.commission[rows].tolist())]

    def filled_notional(self) -> np.ndarray:
        """qty x price of each fill, in order."""
        rows = np.array([i for i, status in enumerate(self.statuses) if status == "filled"], dtype=np.intp)
        out: np.ndarray = self.placed.batch.qty[rows] * self._fills.price[rows]
        return out


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
        self._orders: dict[str, tuple[_Sheet, int]] = {}  # every order by client id
        self._pending: dict[str, tuple[_Sheet, int]] = {}  # the open ones, in the order placed
        self._pending_qty: dict[str, float] = {}  # signed shares of pending orders, per symbol
        self._fill_seq = 0
        # Per symbol, what turns this broker's prices into the prices that traded (close /
        # adj_close of the bar being filled, set by the caller with the prices): each fill
        # records its as-traded price for people; returns keep using `price`.
        self.as_traded: Mapping[str, float] = {}

    # --- the Broker port ---------------------------------------------------------------------

    def account(self) -> AccountState:
        equity = self.equity()
        gross = sum(abs(q) * self.last_price.get(s, 0.0) for s, q in self.qty.items())
        return AccountState(cash=self.cash, equity=equity, buying_power=max(0.0, self.settings.margin * equity - gross))

    def positions(self) -> dict[str, BrokerPosition]:
        return {s: BrokerPosition(s, q, self.avg_price.get(s, 0.0), self.last_price.get(s))
                for s, q in self.qty.items() if q}

    @property
    def orders(self) -> dict[str, Order]:
        """Every order the broker holds, as records (made on each read)."""
        return {client_id: sheet.order(i) for client_id, (sheet, i) in self._orders.items()}

    def get_order(self, client_order_id: str, template: Order | None = None) -> Order | None:
        found = self._orders.get(client_order_id)
        return found[0].order(found[1]) if found else None

    def fills_for(self, order: Order) -> list[Fill]:
        return []  # the simulator reports every fill when it happens

    def remember_fills(self, client_order_id: str, filled_qty: float, notional: float) -> None:
        return None

    def open_orders(self) -> list[Order]:
        return [sheet.order(i) for sheet, i in self._pending.values()]

    def pending_symbols(self) -> list[str]:
        """The symbols of the open orders, each once, in order."""
        return sorted({sheet.placed.batch.symbols[i] for sheet, i in self._pending.values()})

    def cancel(self, client_order_id: str, now: datetime) -> Order | None:
        found = self._orders.get(client_order_id)
        if found is None:
            return None
        sheet, i = found
        if sheet.status[i] not in OPEN_ORDER_STATUSES:
            return sheet.order(i)
        self._unpend(sheet, i)
        sheet.status[i], sheet.ts_event[i] = "canceled", now
        return sheet.order(i)

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
        answers = self.submit_batch(PlacedOrders.of(order), now)
        return answers.order(0), answers.fills(0)

    def submit_batch(self, placed: PlacedOrders, now: datetime) -> Answers:
        """Take the orders in order, up to and including the first refused: a sell of more than
        is held (no short selling) or a buy beyond the buying power. An order whose client id
        is known already is answered with its state, as a broker's unique client id would be."""
        known = next((k for k, client_id in enumerate(placed.ids) if client_id in self._orders), None)
        if known == 0:
            sheet, i = self._orders[placed.ids[0]]
            return RecordAnswers([(sheet.order(i), [])])
        if known is not None:  # those before it now; it and the rest in the next call
            placed = placed.take(range(known))
        batch = placed.batch
        symbols, buy, qty, ref = batch.symbols, batch.buy, batch.qty, batch.ref_price
        n = len(symbols)
        with np.errstate(invalid="ignore"):
            priced = np.isfinite(ref) & (ref > 0)
        # A symbol never marked is valued at its (first) reference price, so pending buys in it
        # count toward buying power instead of as $0.
        first_price: dict[str, tuple[int, float]] = {}  # symbol: (row, price) of its first priced order
        mark = np.empty(n)
        for i, symbol in enumerate(symbols):
            known_mark = self.last_price.get(symbol)
            if known_mark is None:
                known_mark = first_price.setdefault(symbol, (i, float(ref[i])))[1] if priced[i] else math.nan
            mark[i] = known_mark
        signed = np.where(buy, qty, -qty)
        closes_now = self.settings.fill == "close"
        everything = np.ones(n, dtype=bool)
        held0 = np.array([self.qty.get(s, 0.0) for s in symbols])
        projected = running_before(symbols, held0 + np.array([self._pending_qty.get(s, 0.0) for s in symbols]),
                                   signed, everything)
        held = running_before(symbols, held0, signed, everything) if closes_now else held0
        equity0, gross0 = self._exposure() if buy.any() else (math.nan, math.nan)  # sells need no buying power
        fill_price = self._fill_prices(buy, ref)
        commission = qty * fill_price * self.settings.commission_bps / 1e4
        with np.errstate(invalid="ignore"):
            # each accepted order moves gross exposure (and, filled at once, equity) for the next
            step = (np.abs(projected + signed) - np.abs(projected)) * mark
            gross = np.cumsum(np.concatenate([[gross0], step]))[:-1]
            if closes_now:
                cash = np.where(buy, -(qty * fill_price + commission), qty * fill_price - commission)
                equity = np.cumsum(np.concatenate([[equity0], cash + signed * mark]))[:-1]
            else:
                equity = np.full(n, equity0)
            equity = equity + held * (ref - mark)
            gross = gross + np.abs(projected + qty) * ref - np.abs(projected) * mark
            allowed = self.settings.margin * equity
            short = ~buy & ~(qty <= projected + 1e-9)
            beyond = buy & (gross > allowed * (1 + 1e-9))
        refused = np.flatnonzero(~priced | short | beyond)
        count = int(refused[0]) + 1 if len(refused) else n
        if count < n:
            placed = placed.take(range(count))
        sheet = _Sheet(placed, now)
        for symbol, (row, price) in first_price.items():  # every order answered has marked its symbol
            if row < count:
                self.last_price.setdefault(symbol, price)
        self._orders.update(zip(placed.ids, ((sheet, i) for i in range(count))))
        taken = count - 1 if len(refused) else count
        self._pending.update(zip(placed.ids[:taken], ((sheet, i) for i in range(taken))))
        self._add_pending(symbols[:taken], signed[:taken])
        sheet.status[:taken] = ["accepted"] * taken
        if len(refused):
            f = count - 1
            sheet.status[f] = "rejected"
            sheet.reject[f] = self._refusal(f, symbols[f], float(qty[f]), priced[f], short[f], projected[f],
                                            gross[f], equity[f], allowed[f])
        if closes_now and taken:
            self._fill_rows(sheet, np.arange(taken), ref[:taken], now)
        return SheetAnswers(placed, list(sheet.status), now, sheet.fills, dict(sheet.reject))

    def _refusal(self, i: int, symbol: str, qty: float, priced: bool, short: bool, projected: float, gross: float,
                 equity: float, allowed: float) -> str:
        if not priced:
            return "no reference price"
        if short:
            return f"sell of {qty:g} {symbol} exceeds the {projected:g} held (no short selling)"
        return (f"insufficient buying power: gross exposure would be ${gross:,.2f}, "
                f"over {self.settings.margin:g}x equity ${equity:,.2f} = ${allowed:,.2f}")

    # --- driving the simulation ----------------------------------------------------------------

    def fill_open(self, open_prices: Mapping[str, float], now: datetime) -> list[SheetAnswers]:
        """Fill the pending market orders at this bar's open; cancel those whose symbol has no
        bar. One answer per batch the orders were placed in, in the order placed."""
        by_sheet: dict[int, tuple[_Sheet, list[int]]] = {}
        for sheet, i in self._pending.values():
            by_sheet.setdefault(id(sheet), (sheet, []))[1].append(i)
        out = []
        for sheet, rows in by_sheet.values():
            symbols = sheet.placed.batch.symbols
            price = np.array([open_prices.get(symbols[i], math.nan) for i in rows], dtype=float)
            with np.errstate(invalid="ignore"):
                usable = np.isfinite(price) & (price > 0)
            index = np.asarray(rows, dtype=np.intp)
            for i in index[~usable].tolist():
                self._unpend(sheet, i)
                sheet.status[i], sheet.ts_event[i] = "canceled", now
                sheet.reject[i] = "no bar to fill at"
            # Fills are booked in the order placed: the cash they move adds up in that order.
            if usable.all():
                self._fill_rows(sheet, index, price, now)
            else:
                for i, p in zip(index.tolist(), price.tolist()):
                    if not (math.isfinite(p) and p > 0):
                        continue
                    self._fill_rows(sheet, np.array([i]), np.array([p]), now)
            placed = sheet.placed.take(index)
            fills = _Fills(len(index))
            for name in _Fills.__slots__:
                getattr(fills, name)[:] = getattr(sheet.fills, name)[index]
            out.append(SheetAnswers(placed, [sheet.status[i] for i in rows], now, fills,
                                    {k: sheet.reject[i] for k, i in enumerate(rows) if i in sheet.reject}))
        return out

    def on_open(self, open_prices: dict[str, float], now: datetime) -> list[tuple[Order, list[Fill]]]:
        """`fill_open` as (order, fills) records."""
        return [pair for answers in self.fill_open(open_prices, now) for pair in answers.records()]

    def mark(self, prices: dict[str, float], as_traded: Mapping[str, float] | None = None) -> None:
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
        return charge

    def equity(self) -> float:
        return self.cash + sum(q * self.last_price.get(s, self.avg_price.get(s, 0.0)) for s, q in self.qty.items())

    def restore_fill(self, fill: Fill) -> None:
        """Book a fill made earlier (a journaled one) into cash and holdings, exactly as it
        was booked when it happened: what rebuilding the broker from the journal needs for
        the fills its last mark does not hold yet."""
        self._book(fill.symbol, fill.side == "buy", fill.qty, fill.price, fill.commission)
        self.last_price.setdefault(fill.symbol, fill.price)

    # --- internals -------------------------------------------------------------------------------

    def _exposure(self) -> tuple[float, float]:
        """(equity, gross exposure once every pending order fills) at the marked prices."""
        held, pending = self.qty, self._pending_qty
        symbols = list(held) + [s for s in pending if s not in held]
        last, avg = self.last_price, self.avg_price
        price = np.array([last[s] if s in last else avg.get(s, 0.0) for s in symbols])
        qty = np.array([held.get(s, 0.0) for s in symbols])
        projected = qty + np.array([pending.get(s, 0.0) for s in symbols])
        return self.cash + float(qty @ price), float(np.abs(projected) @ price)

    def _fill_prices(self, buy: np.ndarray, price: np.ndarray) -> np.ndarray:
        slip = self.settings.slippage_bps / 1e4
        out: np.ndarray = np.where(buy, price * (1 + slip), price * (1 - slip))
        return out

    def _unpend(self, sheet: _Sheet, i: int) -> None:
        """Take an order off the pending list (canceled)."""
        batch = sheet.placed.batch
        del self._pending[sheet.placed.ids[i]]
        qty = float(batch.qty[i])
        self._add_pending([batch.symbols[i]], np.array([-qty if batch.buy[i] else qty]))

    def _fill_rows(self, sheet: _Sheet, rows: np.ndarray, price: np.ndarray, now: datetime) -> None:
        """Fill `rows` of `sheet` in full at `price` (before slippage), in order."""
        batch, fills = sheet.placed.batch, sheet.fills
        buy, qty = batch.buy[rows], batch.qty[rows]
        symbols = [batch.symbols[i] for i in rows.tolist()]
        fill_price = self._fill_prices(buy, price)
        commission = qty * fill_price * self.settings.commission_bps / 1e4
        fills.price[rows], fills.commission[rows] = fill_price, commission
        fills.seq[rows] = np.arange(self._fill_seq + 1, self._fill_seq + 1 + len(rows))
        self._fill_seq += len(rows)
        factors = [self.as_traded.get(s) for s in symbols]
        fills.as_traded[rows] = [f * p if factor else math.nan
                                 for f, p, factor in zip(fill_price.tolist(), factors, factors)] if factors else []
        for i in rows.tolist():
            del self._pending[sheet.placed.ids[i]]
            sheet.status[i], sheet.ts_event[i] = "filled", now
        signed = np.where(buy, qty, -qty)
        self._add_pending(symbols, -signed)
        if len(set(symbols)) < len(symbols):  # a symbol twice: booked one after the other
            for k, symbol in enumerate(symbols):
                self._book(symbol, bool(buy[k]), float(qty[k]), float(fill_price[k]), float(commission[k]))
        else:
            self._book_all(symbols, buy, qty, fill_price, commission)
        for symbol, p in zip(symbols, price.tolist()):
            if symbol not in self.last_price:
                self.last_price[symbol] = p

    def _add_pending(self, symbols: list[str], signed: np.ndarray) -> None:
        """Move the pending shares of `symbols` by `signed` (a symbol with none left is dropped:
        every later sum of exposure would walk it)."""
        pending = self._pending_qty
        for symbol, change in zip(symbols, signed.tolist()):
            left = pending.get(symbol, 0.0) + change
            if left == 0.0:
                pending.pop(symbol, None)
            else:
                pending[symbol] = left

    def _book_all(self, symbols: list[str], buy: np.ndarray, qty: np.ndarray, fill_price: np.ndarray,
                  commission: np.ndarray) -> None:
        """`_book` of fills in distinct symbols, in array arithmetic: cash adds up in order, as
        booking them one by one would."""
        notional = qty * fill_price
        cash = np.where(buy, -(notional + commission), notional - commission)
        self.cash = float(np.cumsum(np.concatenate([[self.cash], cash]))[-1])
        held = np.array([self.qty.get(s, 0.0) for s in symbols])
        avg = np.array([self.avg_price.get(s, 0.0) for s in symbols])
        total = np.where(buy, held + qty, held - qty)
        with np.errstate(invalid="ignore", divide="ignore"):
            bought = np.where(total != 0, (held * avg + notional) / total, 0.0)
        closed = ~buy & (np.abs(total) < 1e-9)
        for symbol, b, t, a, c in zip(symbols, buy.tolist(), total.tolist(), bought.tolist(), closed.tolist()):
            if c:
                self.qty.pop(symbol, None)
                self.avg_price.pop(symbol, None)
                continue
            self.qty[symbol] = t
            if b:
                self.avg_price[symbol] = a

    def _book(self, symbol: str, buy: bool, qty: float, fill_price: float, commission: float) -> None:
        """Cash and holdings after one fill (the one place their arithmetic is written)."""
        notional = qty * fill_price
        held = self.qty.get(symbol, 0.0)
        if buy:
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
