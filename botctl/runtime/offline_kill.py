"""`botctl kill` when no bot is running: act on each account's broker directly.

For the simulated broker the account's state lives in the journal, so the broker is rebuilt
from the latest marks (cash and positions), open orders are canceled there, and a flatten
sells every position at its last marked price, with the usual slippage and commission. Every
step is journaled under a `manual` run, like any other trading.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import msgspec

from botctl.records import Event, NavSnapshot, Run
from botctl.spec.plan import AccountPlan


def kill_offline(store, account: AccountPlan, plan_id: str, *, flatten: bool, reason: str) -> dict:
    now = datetime.now(timezone.utc)
    run = Run(run_id=f"manual-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", kind="manual", plan_id=plan_id,
              started_at=now, status="finished", pid=os.getpid(), ended_at=now, note=f"kill: {reason}")
    if account.broker == "alpaca":
        return _kill_at_alpaca(store, account, run, flatten=flatten, reason=reason, now=now)
    from botctl.runtime.live import journal_sim_broker

    latest = store.latest_nav(account.id)
    broker = journal_sim_broker(account, store)
    canceled = [msgspec.structs.replace(o, status="canceled", ts_event=now) for o in store.open_orders(account.id)]
    events = [Event(ts_event=now, subsystem="control", type="kill.orders_canceled", severity="WARN", run_id=run.run_id,
                    account=account.id, message=f"no bot running: {len(canceled)} open order(s) canceled in the journal",
                    details={"reason": reason})]
    orders, fills = [], []
    if flatten:
        from botctl.engine.ids import client_order_id, cycle_prefix
        from botctl.records import Order

        prefix = cycle_prefix(run.run_id, account.id, now) + "-flat"
        for symbol, qty in sorted(broker.qty.items()):
            order = Order(client_order_id=client_order_id(prefix, symbol, "sell"), run_id=run.run_id, account=account.id,
                          symbol=symbol, side="sell", qty=qty, status="pending", ts_init=now, ts_event=now,
                          reason="flatten", ref_price=broker.last_price[symbol])
            orders.append(order)
        events.append(Event(ts_event=now, subsystem="control", type="kill.flatten", severity="WARN", run_id=run.run_id,
                            account=account.id, message=f"flatten: {len(orders)} position(s) sold at their last marked price"))
    with store.transaction():
        store.upsert_run(run)
        for order in canceled:
            store.upsert_order(order)
        for order in orders:
            store.upsert_order(order)  # journaled before the broker sees it
        for order in orders:
            done, order_fills = broker.submit(order, now)
            store.upsert_order(done)
            fills += order_fills
        store.insert_many(fills)
        if latest is not None:
            nav = broker.equity()
            gross = sum(abs(q) * broker.last_price.get(s, 0.0) for s, q in broker.qty.items())
            store.insert(NavSnapshot(run_id=run.run_id, account=account.id, ts_event=now, nav=nav, cash=broker.cash,
                                     gross_exposure=gross, leverage=gross / nav if nav > 0 else 0.0))
            store.insert_many(_positions(run.run_id, account.id, broker, now))
        store.insert_many(events)
    return {"account": account.id, "canceled": len(canceled), "sold": len(fills), "run_id": run.run_id}


def _positions(run_id: str, account: str, broker, now: datetime):
    from botctl.records import Position

    for symbol, qty in sorted(broker.qty.items()):
        price = broker.last_price.get(symbol, 0.0)
        yield Position(run_id=run_id, account=account, ts_event=now, symbol=symbol, qty=qty,
                       avg_price=broker.avg_price.get(symbol, 0.0), price=price, value=qty * price)


def _kill_at_alpaca(store, account: AccountPlan, run: Run, *, flatten: bool, reason: str, now: datetime) -> dict:
    """Cancel every open order at Alpaca (and close every position when asked), then bring the
    journal's open orders up to date from the broker."""
    from botctl.runtime.live import make_broker

    broker = make_broker(account, store)
    canceled = broker.cancel_all()
    closed = broker.close_all_positions() if flatten else 0
    store.upsert_run(run)
    for order in store.open_orders(account.id):
        found = broker.get_order(order.client_order_id, order)
        store.upsert_order(found or msgspec.structs.replace(order, status="canceled", ts_event=now,
                                                             reject_reason="canceled by kill; unknown at the broker"))
    events = [Event(ts_event=now, subsystem="control", type="kill.orders_canceled", severity="WARN", run_id=run.run_id,
                    account=account.id, message=f"no bot running: {canceled} open order(s) canceled at Alpaca",
                    details={"reason": reason})]
    if flatten:
        events.append(Event(ts_event=now, subsystem="control", type="kill.flatten", severity="WARN", run_id=run.run_id,
                            account=account.id, message=f"flatten: {closed} position(s) closed at Alpaca"))
    store.insert_many(events)
    return {"account": account.id, "canceled": canceled, "sold": closed, "run_id": run.run_id}
