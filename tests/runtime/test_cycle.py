"""The account cycle (runtime/cycle.py) on a real SimBroker over the bundled bars: what it
sends after a sell the broker refuses, and that a tripped breaker stops the sends."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest

from botctl.adapters.file_data import load_bars
from botctl.cli.common import Globals, load_plan
from botctl.runtime.book import Book
from botctl.spec.model import RiskSpec
from botctl.strategy.bars import bars_from_frame

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped():
    plan = load_plan(Globals(ROOT, Path("unused.db"), None))
    return plan, bars_from_frame(load_bars(), plan.symbols)


def rejecting_sells(book: Book) -> None:
    """The broker refuses every sell (a halted symbol, a locate problem); buys go through."""
    real = book.broker.submit

    def submit(order, now):
        if order.side == "sell":
            rejected = msgspec.structs.replace(order, status="rejected", ts_event=now, reject_reason="sell refused")
            book.broker.orders[order.client_order_id] = rejected
            return rejected, []
        return real(order, now)

    book.broker.submit = submit


def gross_leverage(book: Book, closes: dict[str, float]) -> float:
    nav = book.broker.cash + sum(q * closes[s] for s, q in book.broker.qty.items())
    return sum(abs(q) * closes[s] for s, q in book.broker.qty.items()) / nav


def test_buys_that_relied_on_a_refused_sell_are_checked_again(shipped):
    plan, bars = shipped
    account = plan.accounts[0]
    limit = 1.3  # the plan runs at 1.25x: a rotation whose sells fail would end far above
    account = msgspec.structs.replace(account, risk=RiskSpec(max_gross_leverage=limit, max_rejects=1000),
                                      sim=msgspec.structs.replace(account.sim, fill="close"))
    book = Book(account, bars, run_id="t", namespace="t")
    start = bars.index_of(date(2016, 1, 4))
    rechecked = 0
    for row in range(start, start + 400):
        day = bars.dates[row]
        due = book.due(day, force=row == start)
        if not due:
            continue
        if row > start:
            rejecting_sells(book)
        now = datetime.combine(day, datetime.min.time(), timezone.utc) + timedelta(hours=15)
        book.rebalance(row, due, now)
        closes = book.prices(bars.close, row - 1)
        assert gross_leverage(book, closes) <= limit + 1e-9, day
        rechecked += sum(1 for e in book.events if e.type == "gate.blocked" and "relied on failed" in e.message)
    assert rechecked >= 1  # a rotation came whose buys counted on a refused sell
    blocked = [e for e in book.events if e.type == "gate.blocked"]
    assert {e.subsystem for e in blocked} == {"guard"}
    assert all(set(e.details) == {"rule", "limit", "value", "order"} for e in blocked)
    rejected = [e for e in book.events if e.type == "order.rejected"]
    assert rejected and {e.subsystem for e in rejected} == {"broker"}


def test_a_tripped_breaker_stops_the_cycle_with_one_trip(shipped):
    plan, bars = shipped
    account = msgspec.structs.replace(plan.accounts[0], risk=RiskSpec(max_rejects=1))
    book = Book(account, bars, run_id="t", namespace="t")
    book.broker.submit = lambda order, now: (msgspec.structs.replace(order, status="rejected", ts_event=now,
                                                                     reject_reason="refused"), [])
    row = bars.index_of(date(2021, 3, 1))
    book.rebalance(row, book.due(bars.dates[row], force=True), datetime(2021, 3, 1, 15, tzinfo=timezone.utc))
    assert [o.status for o in book.orders] == ["rejected"]
    assert [e.type for e in book.events].count("breaker.tripped") == 1
    halted = [e for e in book.events if e.type == "gate.blocked" and e.details["rule"] == "halted"]
    assert len(halted) >= 1 and book.halt.startswith("max_rejects")
