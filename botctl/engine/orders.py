"""A cycle's orders as columns. Pure.

The engine, the risk guard, the ledgers and the simulated broker pass one `OrderBatch` per
cycle instead of one object per order: a rebalance of hundreds of symbols is a few array
operations, and a record (`records.SubmitOrder`, `records.Order`) is built only where one is
journaled or shown. The order of the rows is the order of sending: sells first, then buys.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
import numpy as np

from botctl.engine.ids import client_order_id
from botctl.records import Order, OrderStatus, Side, SubmitOrder

_EMPTY_F = np.empty(0)
_EMPTY_B = np.empty(0, dtype=bool)


class OrderBatch:
    """`account`'s orders: row i buys (`buy[i]`) or sells `qty[i]` shares of `symbols[i]`,
    sized at `ref_price[i]`, for `reasons[i]`."""

    __slots__ = ("account", "symbols", "buy", "qty", "ref_price", "reasons")

    def __init__(self, account: str, symbols: list[str], buy: np.ndarray, qty: np.ndarray, ref_price: np.ndarray,
                 reasons: list[str]) -> None:
        self.account = account
        self.symbols = symbols
        self.buy = buy
        self.qty = qty
        self.ref_price = ref_price
        self.reasons = reasons

    @classmethod
    def empty(cls, account: str) -> OrderBatch:
        return cls(account, [], _EMPTY_B, _EMPTY_F, _EMPTY_F, [])

    @classmethod
    def from_commands(cls, account: str, commands: Sequence[SubmitOrder]) -> OrderBatch:
        return cls(account, [c.symbol for c in commands], np.array([c.side == "buy" for c in commands], dtype=bool),
                   np.array([c.qty for c in commands], dtype=float),
                   np.array([c.ref_price for c in commands], dtype=float), [c.reason for c in commands])

    def __len__(self) -> int:
        return len(self.symbols)

    def side(self, i: int) -> Side:
        return "buy" if self.buy[i] else "sell"

    def command(self, i: int) -> SubmitOrder:
        return SubmitOrder(account=self.account, symbol=self.symbols[i], side=self.side(i), qty=float(self.qty[i]),
                           ref_price=float(self.ref_price[i]), reason=self.reasons[i])

    def commands(self) -> list[SubmitOrder]:
        return [self.command(i) for i in range(len(self.symbols))]

    def take(self, rows: Sequence[int] | np.ndarray) -> OrderBatch:
        """The rows given, in that order."""
        index = np.asarray(rows, dtype=np.intp)
        if len(index) == len(self.symbols) and (index == np.arange(len(index))).all():
            return self
        return OrderBatch(self.account, [self.symbols[i] for i in index.tolist()], self.buy[index], self.qty[index],
                          self.ref_price[index], [self.reasons[i] for i in index.tolist()])

    def relabeled(self, reason: str) -> OrderBatch:
        return OrderBatch(self.account, self.symbols, self.buy, self.qty, self.ref_price, [reason] * len(self.symbols))

    def first_buy(self) -> int:
        """The row of the first buy (len when there is none)."""
        buys = np.flatnonzero(self.buy)
        return int(buys[0]) if len(buys) else len(self.symbols)


def concat(account: str, batches: Sequence[OrderBatch]) -> OrderBatch:
    batches = [b for b in batches if len(b)]
    if not batches:
        return OrderBatch.empty(account)
    if len(batches) == 1:
        return batches[0]
    return OrderBatch(account, [s for b in batches for s in b.symbols], np.concatenate([b.buy for b in batches]),
                      np.concatenate([b.qty for b in batches]), np.concatenate([b.ref_price for b in batches]),
                      [r for b in batches for r in b.reasons])


class PlacedOrders:
    """A batch with what makes its rows orders: each row's client id, and the run and time
    they were placed in. Records (`records.Order`) are made of it where one is journaled."""

    __slots__ = ("batch", "ids", "run_id", "ts_init", "originals")

    def __init__(self, batch: OrderBatch, ids: list[str], run_id: str, ts_init: datetime,
                 originals: list[Order] | None = None) -> None:
        self.batch = batch
        self.ids = ids
        self.run_id = run_id
        self.ts_init = ts_init
        self.originals = originals  # the records the rows were made of, when they came as records

    @classmethod
    def of(cls, order: Order) -> PlacedOrders:
        """One order record (a journaled one, say) as a batch of one."""
        batch = OrderBatch(order.account, [order.symbol], np.array([order.side == "buy"]), np.array([order.qty]),
                           np.array([math.nan if order.ref_price is None else order.ref_price]), [order.reason])
        return cls(batch, [order.client_order_id], order.run_id, order.ts_init, [order])

    @property
    def account(self) -> str:
        return self.batch.account

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: Sequence[int] | np.ndarray) -> PlacedOrders:
        index = np.asarray(rows, dtype=np.intp)
        if len(index) == len(self.ids) and (index == np.arange(len(index))).all():
            return self
        originals = None if self.originals is None else [self.originals[i] for i in index.tolist()]
        return PlacedOrders(self.batch.take(index), [self.ids[i] for i in index.tolist()], self.run_id, self.ts_init,
                            originals)

    def record(self, i: int, status: OrderStatus = "pending", ts_event: datetime | None = None, **changes: Any) -> Order:
        """Row i as an order record, in `status` since `ts_event` (pending since placed)."""
        if self.originals is not None:
            return msgspec.structs.replace(self.originals[i], status=status,
                                           ts_event=ts_event or self.originals[i].ts_event, **changes)
        batch = self.batch
        ref = float(batch.ref_price[i])
        return Order(client_order_id=self.ids[i], run_id=self.run_id, account=batch.account, symbol=batch.symbols[i],
                     side=batch.side(i), qty=float(batch.qty[i]), status=status, ts_init=self.ts_init,
                     ts_event=ts_event or self.ts_init, reason=batch.reasons[i],
                     ref_price=None if math.isnan(ref) else ref, **changes)

    def records(self) -> list[Order]:
        """The rows as they were placed."""
        if self.originals is not None:
            return list(self.originals)
        return [self.record(i) for i in range(len(self.ids))]


def client_ids(prefix: str, batch: OrderBatch) -> list[str]:
    """`ids.client_order_id` of every row, first attempts."""
    return [client_order_id(prefix, symbol, "buy" if buy else "sell")
            for symbol, buy in zip(batch.symbols, batch.buy.tolist())]


def running_before(symbols: Sequence[str], start: np.ndarray, signed: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Each row's symbol's quantity before that row: `start` (its quantity before the first
    row) moved by the `signed` change of every earlier row of the same symbol that `counted`
    marks. With each symbol once, that is `start`."""
    if len(set(symbols)) == len(symbols):
        return start
    out, running = start.copy(), dict[str, float]()
    for i, symbol in enumerate(symbols):
        out[i] = running.get(symbol, out[i])
        if counted[i]:
            running[symbol] = out[i] + signed[i]
    return out
