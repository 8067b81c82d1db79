"""A cycle's orders as columns. Pure.

The engine, the risk guard, the ledgers and the simulated broker pass one `OrderBatch` per
cycle instead of one object per order: a rebalance of hundreds of symbols is a few array
operations, and a record (`records.SubmitOrder`, `records.Order`) is built only where one is
journaled or shown. The order of the rows is the order of sending: sells first, then buys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from botctl.records import Side, SubmitOrder

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
