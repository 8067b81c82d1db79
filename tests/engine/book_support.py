"""A tiny driver for signal-book tests: decide on each row's close, fill at the next open."""

from __future__ import annotations

import numpy as np

from botctl.engine.positions import BookNote, ModelBook, decide_book
from botctl.records import SubmitOrder
from botctl.spec import steps as st
from botctl.spec.model import ScheduleSpec
from botctl.spec.plan import ModelPlan
from botctl.strategy.bars import Bars
from botctl.strategy.signals import Signals


def model(*steps: st.Step, universe: tuple[str, ...] = ("AAA",), budget: float = 1.0) -> ModelPlan:
    return ModelPlan(name="Book", budget=budget, universe=universe, symbols=universe,
                     schedule=ScheduleSpec(every="daily"), steps=steps)


class Driver:
    """Runs one book model over `bars` with cash and holdings kept like a broker filling every
    order in full at the next session's open."""

    def __init__(self, plan: ModelPlan, bars: Bars, *, cash: float = 10_000.0, fractional: bool = True,
                 external: dict[str, np.ndarray] | None = None) -> None:
        self.plan, self.bars, self.fractional = plan, bars, fractional
        self.signals = Signals(bars, plan.steps, external)
        self.cash = cash
        self.qty: dict[str, float] = {}
        self.book: ModelBook | None = None
        self.orders: dict[int, list[SubmitOrder]] = {}  # decision row -> orders
        self.notes: dict[int, list[BookNote]] = {}
        self.fills: list[tuple[int, str, str, float, float]] = []  # (row, symbol, side, qty, price)

    def prices(self, row: int) -> dict[str, float]:
        return {s: float(self.bars.close[row, i]) for i, s in enumerate(self.bars.symbols)
                if not np.isnan(self.bars.close[row, i])}

    def step(self, row: int) -> list[SubmitOrder]:
        prices = self.prices(row)
        nav = self.cash + sum(q * prices.get(s, 0.0) for s, q in self.qty.items())
        out = decide_book(self.plan, self.signals, row, self.book, self.qty, prices, nav, account="acct",
                          fractional=self.fractional)
        self.book = out.book
        self.orders[row], self.notes[row] = out.orders, out.notes
        if row + 1 < len(self.bars.dates):
            for order in out.orders:
                price = float(self.bars.open[row + 1, self.bars.symbols.index(order.symbol)])
                if np.isnan(price):
                    continue  # no bar: the broker cancels it
                sign = 1 if order.side == "buy" else -1
                self.qty[order.symbol] = self.qty.get(order.symbol, 0.0) + sign * order.qty
                self.cash -= sign * order.qty * price
                self.fills.append((row + 1, order.symbol, order.side, order.qty, price))
        return out.orders

    def run(self, first: int = 0, last: int | None = None) -> Driver:
        for row in range(first, (last if last is not None else len(self.bars.dates) - 1) + 1):
            self.step(row)
        return self

    def reasons(self) -> list[tuple[int, str, str]]:
        """(decision row, symbol, reason) of every order."""
        return [(row, o.symbol, o.reason) for row, orders in sorted(self.orders.items()) for o in orders]
