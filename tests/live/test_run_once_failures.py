"""`run --once` when the broker takes none of the orders: the exit code and the breakers, as
the README and the backtest have them (a real botctl subprocess against the loopback fake)."""

from __future__ import annotations

import pytest
from live_support import alpaca_account, make_workspace, new_fake


@pytest.mark.parametrize("kind", ["500", "429", "drop"])
def test_every_order_unknown_exits_1(tmp_path, kind):
    fake = new_fake()
    try:
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("alp", fake.url, extra="risk: {max_rejects: 50}"))
        fake.inject(kind, count=None)  # every order request, retries included
        done = ws.run_once(timeout=180)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "could not trade" in done.stderr and "Traceback" not in done.stderr
        statuses = {o["status"] for o in ws.journal_orders("alp")}
        assert statuses == {"unknown"}, statuses
        assert not fake.orders()  # nothing reached the broker, nothing was placed twice
    finally:
        fake.stop()


def test_max_rejects_trips_once_and_stops_the_sends(tmp_path):
    fake = new_fake()
    try:
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("alp", fake.url, extra="risk: {max_rejects: 1}"))
        fake.inject("reject", count=None)
        done = ws.run_once(timeout=180)
        assert done.returncode == 1, (done.stdout, done.stderr)
        events = ws.events("alp")
        assert [t for t, _, _ in events].count("breaker.tripped") == 1, events
        orders = ws.journal_orders("alp")
        assert [o["status"] for o in orders].count("rejected") == 1, orders
        # The rest were committed, then withdrawn unsent: canceled, each with a `halted` block.
        assert all(o["status"] == "canceled" for o in orders if o["status"] != "rejected")
        halted = ws.query("SELECT count(*) FROM events WHERE type = 'gate.blocked' AND subsystem = 'guard' "
                          "AND json_extract(details, '$.rule') = 'halted'")[0][0]
        assert halted == len(orders) - 1 >= 1
        assert ws.query("SELECT subsystem FROM events WHERE type = 'breaker.tripped'") == [("guard",)]
    finally:
        fake.stop()


def test_orders_are_sized_and_collared_at_the_latest_trade(tmp_path):
    """The latest trade (GET /v2/stocks/trades/latest), not the last close, is what an order
    is sized at; one 30% away from the last close is refused by the collar."""
    from live_support import REBALANCE_DAY, adj_close

    fake = new_fake()
    try:
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("alp", fake.url))
        previous = max(d for d in fake._bar_days["XLK"] if d < REBALANCE_DAY)
        last_close = adj_close("XLK", previous)
        fake.set_price("XLK", last_close * 1.3)
        fake.set_price("XLF", adj_close("XLF", previous) * 1.02)
        done = ws.run_once(timeout=180)
        assert done.returncode == 0, done.stderr
        refs = dict(ws.query("SELECT symbol, ref_price FROM orders WHERE account = 'alp'"))
        assert "XLK" not in refs  # refused before anything was committed
        assert refs["XLF"] == pytest.approx(adj_close("XLF", previous) * 1.02)
        blocks = ws.query("SELECT symbol, json_extract(details, '$.rule') FROM events WHERE type = 'gate.blocked'")
        assert ("XLK", "price_collar") in blocks
    finally:
        fake.stop()
