"""Record factories shared by the store tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from botctl.records import Order, Run

T0 = datetime(2024, 3, 1, 14, 30, 0, 123456, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_run(run_id: str = "r1", **kw) -> Run:
    return Run(**{"run_id": run_id, "kind": "backtest", "plan_id": "plan", "started_at": T0, **kw})


def make_order(cid: str = "o1", run_id: str = "r1", account: str = "acct", **kw) -> Order:
    base = dict(
        client_order_id=cid, run_id=run_id, account=account, symbol="SPY", side="buy",
        qty=10.0, status="pending", ts_init=T0, ts_event=T0,
    )
    base.update(kw)
    return Order(**base)
