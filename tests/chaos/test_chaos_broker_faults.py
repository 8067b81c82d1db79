"""Broker faults at a configured rate.

The real scheduled loop (`botctl run`, through `run_trading`) runs in this process on a
SkipClock for several XNYS sessions of a daily-rebalancing plan, against a ChaosAlpaca that
answers each trading request with a fault drawn at random (seeded) - 429, 500, 503, 504 after
acceptance, slow answers and timeouts, dropped connections, partial fills, rejections - and
expires day orders at the close as Alpaca does. Then the faults stop.

What must hold: the loop never dies and tries every session; no order breaks the account's
risk limits (tight ones, so they bind); nothing is placed twice; once faults stop (and the
next start has reconciled) the journal equals the broker and the account is on the plan's
targets. The same for faults on the market-data endpoint, where a failed fetch means no trade
that session, with an ERROR event saying why.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pytest
from chaos_support import (
    DATA_PATHS,
    KEY,
    SECRET,
    TRADING_PATHS,
    SkipClock,
    alpaca_account,
    cycle_lines,
    daily_strategies,
    environ,
    faulted_loop,
    ledger,
    limit_breaches,
    make_workspace,
    new_chaos_fake,
    ny,
    quick_broker,
    run_loop,
    sessions_from,
    target_error,
)

from botctl.records import OPEN_ORDER_STATUSES

SESSIONS = int(os.environ.get("BOTCTL_CHAOS_FAULT_SESSIONS", "6"))
RATE = float(os.environ.get("BOTCTL_CHAOS_FAULT_RATE", "0.25"))
FIRST = date(2024, 3, 4)


@pytest.mark.timeout(150)
def test_trading_faults_at_a_rate_the_loop_survives_within_limits_and_ends_on_target(tmp_path, seed):
    run = faulted_loop(tmp_path, seed, sessions=SESSIONS, rate=RATE, paths=TRADING_PATHS, first=FIRST)
    ws, fake, days, loop = run["ws"], run["fake"], run["days"], run["loop"]
    try:
        context = f"seed {seed}, injected {run['injected']}\n" + "\n".join(loop["echo"])
        print(context)
        assert loop["status"] == "stopped", context  # it ran to the clock's end: it never died
        tried = {line.split(" ", 1)[0] for line in cycle_lines(loop["echo"])}
        assert tried == {str(s.day) for s in days}, context  # a cycle (or its failure) every session
        assert sum(run["injected"].values()) >= SESSIONS and len(run["injected"]) >= 4, run["injected"]
        assert limit_breaches(ws, fake, "alp") == [], context
        assert run["exposures"] == [], context
        assert run["restart"]["accounts"]["alp"].startswith(("0 order", "1 order", "2 order", "3 order")), run["restart"]
        book = ledger(ws, fake, "alp")
        assert book.ok(), f"{book}\n{context}"
        assert target_error(fake, days[-1].day) == [], context
        assert ws.query("SELECT status FROM runs ORDER BY id") == [("stopped",), ("finished",)]
    finally:
        fake.stop()


@pytest.mark.timeout(120)
def test_market_data_faults_skip_the_session_with_an_error_and_trade_again_when_data_is_back(tmp_path, seed):
    """Faults at a rate on the data endpoint, and one session during which it is down."""
    run = faulted_loop(tmp_path, seed, sessions=4, rate=0.12, paths=DATA_PATHS, first=FIRST, outage=2,
                       kinds=("500", "503", "drop"))
    ws, fake, days, loop = run["ws"], run["fake"], run["days"], run["loop"]
    try:
        context = f"seed {seed}, injected {run['injected']}\n" + "\n".join(loop["echo"])
        assert loop["status"] == "stopped", context
        assert sum(run["injected"].values()) >= 2, context
        tries: dict[str, list[bool]] = {}  # session -> did each try fail? (a failed cycle is tried again)
        for line in cycle_lines(loop["echo"]):
            if " alp: " in line:
                tries.setdefault(line.split(" ", 1)[0], []).append(": failed: " in line)
        failed = {day for day, outcomes in tries.items() if all(outcomes)}
        assert run["outage"] in failed and len(tries[run["outage"]]) >= 3, context  # down all session: retried, no trade
        errors = [e for e in ws.events("alp") if e[0] == "cycle.failed"]
        assert len(errors) == sum(map(sum, tries.values())), errors
        assert all(e[1] == "ERROR" and "bars" in e[2] for e in errors), errors
        ordered_days = {o["created_at"][:10] for o in fake.orders()}
        assert not (failed & ordered_days), f"traded on a session whose data failed\n{context}"
        assert str(days[-1].day) not in failed and str(days[-1].day) in ordered_days, context
        assert ledger(ws, fake, "alp").ok()
        assert target_error(fake, days[-1].day) == [], context
    finally:
        fake.stop()


@pytest.mark.timeout(60)
def test_one_transient_market_data_error_is_retried_and_the_cycle_trades(tmp_path):
    days = sessions_from(FIRST, 1)
    clock = SkipClock(ny(days[0].day, 10, 30), days[0].close)
    with new_chaos_fake(now=clock.now) as fake:
        ws = make_workspace(tmp_path)
        daily_strategies(ws.config)
        ws.write_accounts(alpaca_account("alp", fake.url))
        fake.inject("503", method="GET", path="/v2/stocks/bars")
        with environ(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET), quick_broker():
            outcome = run_loop(ws, clock, once=True)
        assert fake.injected["503"] == 1
        assert "order(s) sent" in outcome["accounts"]["alp"], outcome
        assert target_error(fake, days[0].day) == []


def _held_open_loop(tmp_path, *, fill_on_submit: bool, partial: bool, halt_at=None):
    days = sessions_from(FIRST, 1)
    clock = SkipClock(ny(days[0].day, 9, 0), days[0].close + timedelta(minutes=30))
    fake = new_chaos_fake(now=clock.now)
    fake.fill_on_submit = fill_on_submit
    if partial:
        fake.inject("partial_fill", fraction=0.5)
    ws = make_workspace(tmp_path)
    daily_strategies(ws.config)
    ws.write_accounts(alpaca_account("alp", fake.url))
    if halt_at is not None:
        def halt(old, new):
            if old < halt_at <= new:
                from botctl.records import Control
                from botctl.store import Store

                with Store.open(ws.db) as store:
                    store.set_control(Control(account="alp", halted=True, reason="chaos drill", since=new, who="operator"))
        clock.hooks.append(halt)
    with environ(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET), quick_broker():
        loop = run_loop(ws, clock)
    return ws, fake, loop


@pytest.mark.timeout(60)
def test_the_loop_journals_fills_that_arrive_after_the_send(tmp_path):
    ws, fake, loop = _held_open_loop(tmp_path, fill_on_submit=False, partial=False)
    try:
        assert loop["status"] == "stopped"
        at_broker = fake.orders()
        assert at_broker and all(o["status"] == "filled" for o in at_broker)
        assert ws.latest_positions("alp").keys() == fake.positions().keys()  # the mark is right ...
        journal = ws.journal_orders("alp")
        # ... but the orders and fills must be too, by the day's close at the latest
        assert [o["status"] for o in journal] == ["filled"] * len(at_broker), journal
        assert ledger(ws, fake, "alp").ok()
    finally:
        fake.stop()


@pytest.mark.timeout(60)
def test_a_kill_in_the_loop_journals_the_orders_it_cancels(tmp_path):
    days = sessions_from(FIRST, 1)
    ws, fake, loop = _held_open_loop(tmp_path, fill_on_submit=True, partial=True, halt_at=ny(days[0].day, 12, 0))
    try:
        assert loop["status"] == "stopped"
        acked = ws.query("SELECT acked_at FROM control WHERE account = 'alp'")
        assert acked and acked[0][0] is not None
        canceled_msgs = [e[2] for e in ws.events("alp") if e[0] == "kill.orders_canceled"]
        assert canceled_msgs and "1 open order(s) canceled" in canceled_msgs[0], canceled_msgs
        assert [o["status"] for o in fake.orders()].count("canceled") == 1
        still_open = [o for o in ws.journal_orders("alp") if o["status"] in OPEN_ORDER_STATUSES]
        assert still_open == [], still_open
    finally:
        fake.stop()
