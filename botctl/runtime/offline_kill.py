"""`botctl kill` when no bot is running: act on each account's broker directly.

Only a paper or live account's own state is acted on: the marks and orders of its paper/live
runs (and of earlier kills), never a backtest's or a replay's. For the simulated broker that
state lives in the journal, so the broker is rebuilt from the account's latest marks (cash and
positions); a flatten sells every position at its last marked price, with the usual slippage
and commission, and the account is marked again. An account that has never traded has nothing
to act on and gets no mark. Every step is journaled under a `manual` run, like any other
trading; the cancel-then-flatten itself is control.halt_at_broker, as in a running bot.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from botctl.records import Event, NavSnapshot, Position, Run
from botctl.runtime.control import halt_at_broker
from botctl.spec.plan import AccountPlan

if TYPE_CHECKING:
    from botctl.adapters.sim_broker import SimBroker
    from botctl.store import Store


def kill_offline(store: Store, account: AccountPlan, plan_id: str, *, flatten: bool, reason: str) -> dict:
    from botctl.runtime.live import make_broker

    now = datetime.now(timezone.utc)
    run = Run(run_id=f"manual-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", kind="manual", plan_id=plan_id,
              started_at=now, status="finished", pid=os.getpid(), ended_at=now, note=f"kill: {reason}")
    broker = make_broker(account, store)
    where = "at Alpaca" if account.broker == "alpaca" else "in the journal"
    if account.broker == "alpaca":  # network calls: no journal transaction held open around them
        store.upsert_run(run)
        canceled, closing = halt_at_broker(store, broker, account.id, run.run_id, flatten=flatten, now=now)
        store.insert_many(_events(run, account, canceled, closing, flatten, reason, where,
                                  "position(s) closed at Alpaca"))
        return {"account": account.id, "canceled": canceled, "sold": len(closing), "run_id": run.run_id}
    from botctl.adapters.sim_broker import SimBroker

    assert isinstance(broker, SimBroker)  # what make_broker builds for an account the journal keeps
    latest, _ = store.account_state(account.id)
    with store.transaction():
        store.upsert_run(run)
        canceled, closing = halt_at_broker(store, broker, account.id, run.run_id, flatten=flatten, now=now)
        if latest is not None and closing:  # the account's own state moved: mark it
            nav = broker.equity()
            gross = sum(abs(q) * broker.last_price.get(s, 0.0) for s, q in broker.qty.items())
            store.insert(NavSnapshot(run_id=run.run_id, account=account.id, ts_event=now, nav=nav, cash=broker.cash,
                                     gross_exposure=gross, leverage=gross / nav if nav > 0 else 0.0))
            store.insert_many(_positions(run.run_id, account.id, broker, now))
        store.insert_many(_events(run, account, canceled, closing, flatten, reason, where,
                                  "position(s) sold at their last marked price"))
    sold = sum(1 for o in closing if o.status == "filled")
    result = {"account": account.id, "canceled": canceled, "sold": sold, "run_id": run.run_id}
    if latest is None:
        # Replays and backtests are simulations: their holdings are nobody's to sell.
        result["note"] = "no paper or live run of this account in the journal, so it holds nothing to sell; " \
                         "replay and backtest positions are simulations"
    return result


def _events(run: Run, account: AccountPlan, canceled: int, closing, flatten: bool, reason: str, where: str,
            sold_text: str) -> list[Event]:
    events = [Event(ts_event=run.started_at, subsystem="control", type="kill.orders_canceled", severity="WARN",
                    run_id=run.run_id, account=account.id,
                    message=f"no bot running: {canceled} open order(s) canceled {where}", details={"reason": reason})]
    if flatten:
        events.append(Event(ts_event=run.started_at, subsystem="control", type="kill.flatten", severity="WARN",
                            run_id=run.run_id, account=account.id, message=f"flatten: {len(closing)} {sold_text}"))
    return events


def _positions(run_id: str, account: str, broker: SimBroker, now: datetime) -> Iterator[Position]:
    for symbol, qty in sorted(broker.qty.items()):
        if not qty:
            continue
        price = broker.last_price.get(symbol, 0.0)
        yield Position(run_id=run_id, account=account, ts_event=now, symbol=symbol, qty=qty,
                       avg_price=broker.avg_price.get(symbol, 0.0), price=price, value=qty * price)
