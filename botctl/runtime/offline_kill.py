"""`botctl kill` when no bot is running: act on each account's broker directly.

Only a paper or live account's own state is acted on: the marks and orders of its paper/live
runs (and of earlier kills), never a backtest's or a replay's. For the simulated broker that
state lives in the journal, so the broker is rebuilt from the account's latest mark (cash and
positions) and the fills made since it; a flatten sells every position at its last marked price, with the usual slippage
and commission, and the account is marked again. An account that has never traded has nothing
to act on and gets no mark. Every step is journaled under a `manual` run, like any other
trading; the cancel-then-flatten itself is control.carry_out_halt, as in a running bot and a replay.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import msgspec

from botctl.records import Control, NavSnapshot, Position, Run
from botctl.runtime.control import carry_out_halt
from botctl.runtime.wiring import keeps_state_in_journal, make_broker
from botctl.spec.plan import AccountPlan

if TYPE_CHECKING:
    from botctl.ports import Broker
    from botctl.store import Store


def kill_offline(store: Store, account: AccountPlan, plan_id: str, *, flatten: bool, reason: str) -> dict:
    now = datetime.now(timezone.utc)
    run = Run(run_id=f"manual-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", kind="manual", plan_id=plan_id,
              started_at=now, status="finished", pid=os.getpid(), ended_at=now, note=f"kill: {reason}")
    broker = make_broker(account, store)
    control = store.controls().get(account.id)  # the halt `kill` recorded, with who asked
    if control is None or not control.halted:
        control = Control(account=account.id, halted=True, reason=reason, since=now, who="botctl kill", flatten=flatten)
    control = msgspec.structs.replace(control, flatten=flatten)
    if not keeps_state_in_journal(account):  # network calls: no journal transaction held open around them
        store.upsert_run(run)
        canceled, closing = carry_out_halt(store, broker, account.id, run.run_id, control, now,
                                           by="no bot running, at the broker")
        if closing:  # what the account holds now, so status shows the flattened book
            with store.transaction():
                _mark(store, run.run_id, account.id, broker, now)
        return {"account": account.id, "canceled": canceled, "sold": len(closing), "run_id": run.run_id}
    latest, _ = store.account_state(account.id)
    # Its own state: a mark, or fills before any (a bot killed in its first cycle, before marking).
    traded = latest is not None or bool(store.fills_after_mark(account.id, None))
    with store.transaction():
        store.upsert_run(run)
        canceled, closing = carry_out_halt(store, broker, account.id, run.run_id, control, now,
                                           by="no bot running, in the journal (sold at the last marked prices)")
        if traded and closing:  # the account's own state moved: mark it
            _mark(store, run.run_id, account.id, broker, now)
    sold = sum(1 for o in closing if o.status == "filled")
    result = {"account": account.id, "canceled": canceled, "sold": sold, "run_id": run.run_id}
    if not traded:
        # Replays and backtests are simulations: their holdings are nobody's to sell.
        result["note"] = "no paper or live run of this account in the journal, so it holds nothing to sell; " \
                         "replay and backtest positions are simulations"
    return result


def _mark(store: Store, run_id: str, account: str, broker: Broker, now: datetime) -> None:
    """NAV and positions as the broker reports them after the halt."""
    state = broker.account()
    positions = broker.positions()
    prices = {s: p.price if p.price else p.avg_price for s, p in positions.items()}
    gross = sum(abs(p.qty) * prices[s] for s, p in positions.items())
    store.insert(NavSnapshot(run_id=run_id, account=account, ts_event=now, nav=state.equity, cash=state.cash,
                             gross_exposure=gross, leverage=gross / state.equity if state.equity > 0 else 0.0))
    store.insert_many(Position(run_id=run_id, account=account, ts_event=now, symbol=s, qty=p.qty, avg_price=p.avg_price,
                               price=prices[s], value=p.qty * prices[s]) for s, p in sorted(positions.items()) if p.qty)
