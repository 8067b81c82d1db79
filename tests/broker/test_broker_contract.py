"""The Broker contract: one suite, run against every implementation of botctl.ports.Broker.

`harness` (conftest.py) is parametrized over SimBroker and AlpacaBroker talking to FakeAlpaca.
It starts with $100,000 cash, SPY at 100 and TLT at 50, and market orders filling as they are
submitted; `harness.fills_now(False)` makes them stay open until `harness.settle(...)`.
"""

from __future__ import annotations

import pytest
from broker_support import CASH

from botctl.records import OPEN_ORDER_STATUSES


def _fill_qty(fills) -> float:
    return sum(f.qty for f in fills)


def _position(broker, symbol: str) -> float:
    p = broker.positions().get(symbol)
    return 0.0 if p is None else p.qty


def test_market_buy_fills_and_shows_in_positions_and_account(harness):
    broker = harness.broker
    order = harness.order("SPY", "buy", 10)
    placed, fills = broker.submit(order, harness.now)

    assert placed.client_order_id == order.client_order_id
    assert placed.status == "filled"
    assert placed.filled_qty == pytest.approx(10)
    assert placed.avg_fill_price == pytest.approx(100.0)
    assert placed.run_id == "run-test" and placed.account == "acct"  # the journal's fields survive
    assert [(f.client_order_id, f.symbol, f.side) for f in fills] == [(order.client_order_id, "SPY", "buy")]
    assert _fill_qty(fills) == pytest.approx(10)
    assert fills[0].price == pytest.approx(100.0)

    position = broker.positions()["SPY"]
    assert position.qty == pytest.approx(10)
    assert position.avg_price == pytest.approx(100.0)
    state = broker.account()
    assert state.cash == pytest.approx(CASH - 1_000.0)
    assert state.equity == pytest.approx(CASH)
    assert broker.open_orders() == []


def test_equity_follows_the_price(harness):
    broker = harness.broker
    broker.submit(harness.order("SPY", "buy", 10), harness.now)
    harness.set_price("SPY", 110.0)
    state = broker.account()
    assert state.cash == pytest.approx(CASH - 1_000.0)
    assert state.equity == pytest.approx(CASH - 1_000.0 + 1_100.0)


def test_sell_reduces_the_position_and_a_full_sell_closes_it(harness):
    broker = harness.broker
    broker.submit(harness.order("SPY", "buy", 10), harness.now)
    harness.set_price("SPY", 120.0)

    sold, fills = broker.submit(harness.order("SPY", "sell", 4), harness.now)
    assert sold.status == "filled" and _fill_qty(fills) == pytest.approx(4)
    assert fills[0].side == "sell" and fills[0].price == pytest.approx(120.0)
    assert _position(broker, "SPY") == pytest.approx(6)
    assert broker.account().cash == pytest.approx(CASH - 1_000.0 + 480.0)

    sold, fills = broker.submit(harness.order("SPY", "sell", 6), harness.now)
    assert sold.status == "filled" and _fill_qty(fills) == pytest.approx(6)
    assert "SPY" not in broker.positions()
    state = broker.account()
    assert state.cash == pytest.approx(CASH + 200.0)
    assert state.equity == pytest.approx(CASH + 200.0)


@pytest.mark.parametrize("fills_now", [True, False], ids=["fills", "stays-open"])
def test_same_client_order_id_twice_is_one_order(harness, fills_now):
    broker = harness.broker
    harness.fills_now(fills_now)
    order = harness.order("SPY", "buy", 10)
    first, first_fills = broker.submit(order, harness.now)
    again, again_fills = broker.submit(order, harness.now)

    assert harness.held_order_ids() == [order.client_order_id]
    assert again.client_order_id == first.client_order_id
    assert again.status == first.status == ("filled" if fills_now else "accepted")
    assert again.broker_order_id == first.broker_order_id
    assert again.filled_qty == pytest.approx(first.filled_qty)
    assert again_fills == []  # what the first submit reported is not reported again
    assert _fill_qty(first_fills) == pytest.approx(10 if fills_now else 0)
    assert _position(broker, "SPY") == pytest.approx(10 if fills_now else 0)
    assert [o.client_order_id for o in broker.open_orders()] == ([] if fills_now else [order.client_order_id])


def test_get_order_by_client_id_and_none_for_an_unknown_id(harness):
    broker = harness.broker
    order = harness.order("TLT", "buy", 3)
    placed, _ = broker.submit(order, harness.now)

    found = broker.get_order(order.client_order_id, order)
    assert found is not None
    assert (found.client_order_id, found.symbol, found.side, found.status) == (order.client_order_id, "TLT", "buy", "filled")
    assert found.qty == pytest.approx(3) and found.filled_qty == pytest.approx(3)
    assert found.avg_fill_price == pytest.approx(50.0)
    assert found.broker_order_id == placed.broker_order_id
    bare = broker.get_order(order.client_order_id)  # without the journal's row as a template
    assert bare is not None and bare.client_order_id == order.client_order_id and bare.status == "filled"

    assert broker.get_order("no-such-client-order-id") is None
    assert broker.get_order("no-such-client-order-id", harness.order("TLT", "buy", 1, cid="no-such-client-order-id")) is None


def test_an_open_order_is_listed_and_can_be_canceled(harness):
    broker = harness.broker
    harness.fills_now(False)
    order = harness.order("SPY", "buy", 5)
    placed, fills = broker.submit(order, harness.now)
    assert placed.status in OPEN_ORDER_STATUSES and placed.status != "pending"
    assert fills == [] and placed.filled_qty == 0

    listed = broker.open_orders()
    assert [(o.client_order_id, o.symbol, o.side, o.qty, o.status) for o in listed] == [
        (order.client_order_id, "SPY", "buy", pytest.approx(5), placed.status)]
    assert broker.get_order(order.client_order_id).status == placed.status

    canceled = broker.cancel(order.client_order_id, harness.now)
    assert canceled is not None and canceled.status == "canceled"
    assert broker.open_orders() == []
    assert broker.get_order(order.client_order_id).status == "canceled"
    # Canceling again changes nothing; an unknown id is None.
    assert broker.cancel(order.client_order_id, harness.now).status == "canceled"
    assert broker.cancel("no-such-client-order-id", harness.now) is None
    # A canceled order never fills.
    ((after, after_fills),) = harness.settle([order])
    assert after.status == "canceled" and after_fills == []
    assert "SPY" not in broker.positions()
    assert broker.account().cash == pytest.approx(CASH)


def test_an_open_order_fills_later_and_its_fill_is_reported_once(harness):
    broker = harness.broker
    harness.fills_now(False)
    buy = harness.order("SPY", "buy", 10)
    placed, fills = broker.submit(buy, harness.now)
    assert placed.status == "accepted" and fills == []
    assert broker.account().cash == pytest.approx(CASH)
    assert _position(broker, "SPY") == 0

    ((filled, fills),) = harness.settle([buy])
    assert filled.status == "filled" and filled.filled_qty == pytest.approx(10)
    assert _fill_qty(fills) == pytest.approx(10) and fills[0].price == pytest.approx(100.0)
    assert _position(broker, "SPY") == pytest.approx(10)
    assert broker.open_orders() == []
    # Asked again, the broker reports nothing new.
    assert broker.fills_for(filled) == []
    assert broker.fills_for(broker.get_order(buy.client_order_id, buy)) == []
    assert broker.submit(buy, harness.now)[1] == []


def test_canceling_a_filled_order_leaves_it_filled(harness):
    broker = harness.broker
    order = harness.order("SPY", "buy", 2)
    broker.submit(order, harness.now)
    after = broker.cancel(order.client_order_id, harness.now)
    assert after is not None and after.status == "filled"
    assert _position(broker, "SPY") == pytest.approx(2)


def _assert_rejected(placed, fills, order):
    assert placed.client_order_id == order.client_order_id
    assert placed.status == "rejected"
    assert placed.reject_reason, "a rejected order says why"
    assert fills == [] and placed.filled_qty == 0


def test_selling_what_is_not_held_is_rejected_not_a_short(harness):
    broker = harness.broker
    order = harness.order("TLT", "sell", 5)
    placed, fills = broker.submit(order, harness.now)
    _assert_rejected(placed, fills, order)
    assert "TLT" not in broker.positions()
    assert order.client_order_id not in harness.held_order_ids()
    assert broker.account().cash == pytest.approx(CASH)


def test_selling_more_than_held_is_rejected_not_a_short(harness):
    broker = harness.broker
    broker.submit(harness.order("SPY", "buy", 10), harness.now)
    order = harness.order("SPY", "sell", 15)
    placed, fills = broker.submit(order, harness.now)
    _assert_rejected(placed, fills, order)
    assert _position(broker, "SPY") == pytest.approx(10)
    assert broker.account().cash == pytest.approx(CASH - 1_000.0)


def test_shares_reserved_by_an_open_sell_cannot_be_sold_again(harness):
    broker = harness.broker
    broker.submit(harness.order("SPY", "buy", 10), harness.now)
    harness.fills_now(False)
    first, _ = broker.submit(harness.order("SPY", "sell", 8), harness.now)
    assert first.status == "accepted"
    second = harness.order("SPY", "sell", 5)
    placed, fills = broker.submit(second, harness.now)
    _assert_rejected(placed, fills, second)
    ok, _ = broker.submit(harness.order("SPY", "sell", 2), harness.now)  # exactly what is left
    assert ok.status == "accepted"


def test_a_buy_beyond_buying_power_is_rejected(harness):
    broker = harness.broker
    order = harness.order("SPY", "buy", 3_000)  # $300,000 against $100,000 equity at 2x margin
    placed, fills = broker.submit(order, harness.now)
    _assert_rejected(placed, fills, order)
    assert broker.positions() == {}
    assert broker.account().cash == pytest.approx(CASH)


def test_fractional_quantities(harness):
    broker = harness.broker
    assert broker.fractional is True
    placed, fills = broker.submit(harness.order("SPY", "buy", 0.5), harness.now)
    assert placed.status == "filled" and placed.filled_qty == pytest.approx(0.5)
    assert _fill_qty(fills) == pytest.approx(0.5)
    placed, fills = broker.submit(harness.order("SPY", "buy", 1.125), harness.now)
    assert _fill_qty(fills) == pytest.approx(1.125)
    assert _position(broker, "SPY") == pytest.approx(1.625)
    assert broker.account().cash == pytest.approx(CASH - 162.5)

    sold, fills = broker.submit(harness.order("SPY", "sell", 0.625), harness.now)
    assert sold.status == "filled" and _fill_qty(fills) == pytest.approx(0.625)
    assert _position(broker, "SPY") == pytest.approx(1.0)
    too_much = harness.order("SPY", "sell", 1.001)
    _assert_rejected(*broker.submit(too_much, harness.now), too_much)
    broker.submit(harness.order("SPY", "sell", 1.0), harness.now)
    assert "SPY" not in broker.positions()


def test_fills_for_and_remember_fills_never_report_a_fill_twice(harness):
    broker = harness.broker
    order = harness.order("SPY", "buy", 7)
    placed, fills = broker.submit(order, harness.now)
    reported = list(fills)
    reported += broker.fills_for(placed)
    reported += broker.fills_for(placed)
    looked_up = broker.get_order(order.client_order_id, order)
    reported += broker.fills_for(looked_up)
    # What a restart does: tell the broker what the journal holds, then ask again.
    broker.remember_fills(order.client_order_id, _fill_qty(reported), sum(f.qty * f.price for f in reported))
    reported += broker.fills_for(broker.get_order(order.client_order_id, order))
    reported += broker.submit(order, harness.now)[1]

    assert _fill_qty(reported) == pytest.approx(7)
    assert len({f.fill_id for f in reported}) == len(reported)
    assert sum(f.qty * f.price for f in reported) == pytest.approx(700.0)


def test_cancel_all_cancels_every_open_order(harness):
    broker = harness.broker
    harness.fills_now(False)
    orders = [harness.order("SPY", "buy", 5), harness.order("TLT", "buy", 4)]
    for order in orders:
        broker.submit(order, harness.now)
    assert len(broker.open_orders()) == 2

    assert broker.cancel_all(harness.now) == 2
    assert broker.open_orders() == []
    assert [broker.get_order(o.client_order_id).status for o in orders] == ["canceled", "canceled"]
    assert broker.cancel_all(harness.now) == 0


def test_close_all_sells_every_position_at_market_and_reports_the_orders(harness):
    broker = harness.broker
    broker.submit(harness.order("SPY", "buy", 10), harness.now)
    broker.submit(harness.order("TLT", "buy", 20.5), harness.now)

    closing = broker.close_all(harness.now)
    assert sorted((o.symbol, o.side, o.qty, o.reason) for o, _ in closing) == [
        ("SPY", "sell", pytest.approx(10), "flatten"), ("TLT", "sell", pytest.approx(20.5), "flatten")]
    settled = harness.settle([o for o, _ in closing])
    fills = [f for _, fs in closing for f in fs] + [f for _, fs in settled for f in fs]
    assert sorted((f.symbol, f.side) for f in fills) == [("SPY", "sell"), ("TLT", "sell")]
    assert {f.symbol: f.qty for f in fills} == {"SPY": pytest.approx(10), "TLT": pytest.approx(20.5)}
    assert broker.positions() == {}
    assert broker.account().cash == pytest.approx(CASH)  # bought and sold at the same price, no costs
    assert broker.close_all(harness.now) == []  # nothing left to close


def test_is_open_follows_the_market(harness):
    """The runtime asks the broker, never its kind, whether the market takes orders now."""
    assert harness.broker.is_open(harness.now) is True  # 2024-03-01 10:00 New York, a session
    harness.close_market()
    assert harness.broker.is_open(harness.now) is False
