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
