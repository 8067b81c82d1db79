"""Delivery to a loopback webhook (Apprise's json://): routing, grouping, the daily summary,
retries on 500 and on a hanging receiver, the queue's bound, held messages, masked secrets."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

from notify_support import CLOSE, OPEN, SECRET, Session, config, event, fill, nav, order, run_record

from botctl.notify.delivery import Courier, Outbox
from botctl.notify.messages import Message


def two_routes(a, b) -> str:
    return f"""
    destinations:
      alerts: {{url: "{a.url}"}}
      trades: {{url: "{b.url}"}}
    routes:
      - {{to: alerts, events: ["breaker.*", "reconcile.*", "cycle.failed"], severity: WARN}}
      - {{to: trades, events: [orders.rebalance, daily.summary]}}
    """


def test_events_go_where_the_routes_say_and_are_journaled_and_counted(tmp_path, receiver, receiver2):
    s = Session(tmp_path, config(two_routes(receiver, receiver2)))
    try:
        s.store.upsert_run(run_record())
        s.store.insert(event("breaker.tripped", "CRITICAL", message="account halted: drawdown 36%"))
        s.store.insert(event("reconcile.order_updated", "INFO"))  # below the route's WARN
        s.store.insert(event("market.closed", "INFO"))  # no route
        s.store.upsert_order(order("SPY"))
        got = receiver.wait_for(1)
        trades = receiver2.wait_for(1)
        outcomes = s.wait_outcomes(2)
    finally:
        s.close()
    assert [m["title"] for m in got] == ["CRITICAL breaker.tripped · main"]
    assert "account halted: drawdown 36%" in got[0]["message"] and "botctl resume main" in got[0]["message"]
    assert got[0]["type"] == "failure"
    assert [m["title"] for m in trades] == ["main: rebalance, 1 order(s) (1 filled)"]
    assert receiver.requests == 1 and receiver2.requests == 1
    sent = sorted((e.type, e.details["to"], e.details["about"]) for e in outcomes)
    assert sent == [("notify.sent", "alerts", "breaker.tripped"), ("notify.sent", "trades", "orders.rebalance")]
    assert s.metric("alerts", "sent") == 1 and s.metric("trades", "sent") == 1


def test_a_rebalance_is_one_message_and_the_next_cycle_another(tmp_path, receiver, receiver2):
    s = Session(tmp_path, config(two_routes(receiver, receiver2)))
    try:
        s.store.upsert_run(run_record())
        with s.store.transaction():
            for symbol in ("XLK", "XLF", "XLE"):
                s.store.upsert_order(order(symbol, "sell", status="pending"))
            for symbol in ("TLT", "XLV"):
                s.store.upsert_order(order(symbol, status="pending"))
        for symbol, side in (("XLK", "sell"), ("XLF", "sell"), ("XLE", "sell"), ("TLT", "buy")):
            s.store.upsert_order(order(symbol, side, price=50.0))
        s.store.upsert_order(order("XLV", status="rejected"))
        time.sleep(0.5)  # group_seconds 0.2: the first cycle's message goes
        s.store.upsert_order(order("SPY", cycle="20240304T1500"))
        msgs = receiver2.wait_for(2)
    finally:
        s.close()
    assert len(msgs) == 2
    first = msgs[0]
    assert first["title"] == "main: rebalance, 5 order(s) (4 filled, 1 rejected)"
    lines = first["message"].splitlines()
    assert lines[:5] == ["sold 10 XLK at $50.00 ($500)", "sold 10 XLF at $50.00 ($500)", "sold 10 XLE at $50.00 ($500)",
                         "bought 10 TLT at $50.00 ($500)", "buy 10 XLV (~$1,000): rejected"]
    assert first["type"] == "warning"  # a rejected order makes the message a warning
    assert msgs[1]["title"] == "main: rebalance, 1 order(s) (1 filled)"


def test_daily_summary_after_the_close_says_nav_pnl_vs_benchmark_trades_and_warnings(tmp_path, receiver, receiver2):
    asked = []

    def spy(day: date):
        asked.append(day)
        return 0.004

    s = Session(tmp_path, config(two_routes(receiver, receiver2)), benchmark=spy)
    try:
        s.store.upsert_run(run_record())
        s.store.insert(nav(100_000.0, CLOSE - timedelta(days=1)))  # Thursday's close
        o = order("SPY")
        s.store.upsert_order(o)
        s.store.insert(fill(o))
        s.store.insert(event("gate.blocked", "WARN"))
        s.store.insert(event("cycle.failed", "ERROR"))
        s.store.insert(event("gate.blocked", "WARN", account="other"))  # another account's
        s.store.insert(nav(100_500.0, OPEN + timedelta(minutes=31)))  # after the cycle: no summary
        s.store.insert(nav(101_250.0, CLOSE + timedelta(minutes=5)))
        s.store.insert(nav(101_250.0, CLOSE + timedelta(minutes=6)))  # a second close mark: one summary
        msgs = receiver2.wait_for(3)
        time.sleep(0.3)
    finally:
        s.close()
    summaries = [m for m in receiver2.messages if "daily summary" in m["title"]]
    # Thursday's close has its summary too; Friday's two close marks make one
    assert [m["title"] for m in summaries] == ["main: daily summary 2024-02-29", "main: daily summary 2024-03-01"]
    body = summaries[1]["message"].splitlines()
    assert body[0] == "NAV $101,250.00 (as of 2024-03-01 16:05 ET)"
    assert body[1] == "day P&L +$1,250.00 (+1.25%) vs SPY +0.40%"
    assert body[2] == "trades: 1 fill(s)"
    assert body[3] == "warnings: 2, of which 1 error(s)"
    assert asked == [date(2024, 2, 29), date(2024, 3, 1)]
    # the day's orders come before its summary
    titles = [m["title"] for m in msgs]
    assert titles.index("main: rebalance, 1 order(s) (1 filled)") < titles.index("main: daily summary 2024-03-01"), titles


def test_a_500_is_retried_with_backoff_until_delivered(tmp_path, receiver):
    receiver.fail_next = 2
    cfg = config(f"""
    destinations: {{hook: {{url: "{receiver.url}"}}}}
    routes: [{{to: hook}}]
    """)
    s = Session(tmp_path, cfg)
    try:
        s.store.upsert_run(run_record())
        s.store.insert(event("cycle.failed", "ERROR"))
        got = receiver.wait_for(1)
        outcomes = s.wait_outcomes(1)
    finally:
        s.close()
    assert len(got) == 1 and receiver.requests == 3
    assert [(e.type, e.details["attempts"]) for e in outcomes] == [("notify.sent", 3)]


def test_a_hanging_receiver_times_out_and_the_failure_is_journaled_masked(tmp_path, receiver):
    receiver.hang_seconds = 3.0
    url = receiver.url.replace("/hook", "/{env:HOOK_SECRET}")
    cfg = config(f"""
    destinations: {{hook: {{url: "{url}"}}}}
    routes: [{{to: hook}}]
    group_seconds: 0.2
    timeout_seconds: 0.3
    flush_seconds: 5
    retry: {{attempts: 2, first_seconds: 0.05, max_seconds: 0.1}}
    """, {"HOOK_SECRET": SECRET}, fast=False)
    s = Session(tmp_path, cfg)
    try:
        s.store.upsert_run(run_record())
        began = time.monotonic()
        s.store.insert(event("cycle.failed", "ERROR", message="broker down"))
        handed_over = time.monotonic() - began
        outcomes = s.wait_outcomes(1)
    finally:
        s.close()
    assert handed_over < 0.25  # journaling the event did not wait for the receiver (3 s hang)
    assert [(e.type, e.details["attempts"]) for e in outcomes] == [("notify.failed", 2)]
    failed = outcomes[0]
    assert failed.details["url"].endswith("/{env:HOOK_SECRET}")
    assert "timed out" in failed.message.lower() or "error" in failed.message.lower(), failed.message
    dump = (tmp_path / "botctl.db").read_bytes()
    assert SECRET.encode() not in dump
    assert receiver.requests == 2


def test_full_queue_drops_oldest_info_first_and_never_critical():
    box = Outbox(3)
    msgs = {name: Message(name, sev, name, "") for name, sev in
            [("i1", "INFO"), ("w1", "WARN"), ("c1", "CRITICAL"), ("i2", "INFO"), ("c2", "CRITICAL"),
             ("c3", "CRITICAL"), ("c4", "CRITICAL"), ("w2", "WARN")]}
    dropped = [box.put(msgs[n]) for n in ("i1", "w1", "c1", "i2", "c2", "c3", "c4", "w2")]
    assert [d.about if d else None for d in dropped] == [None, None, None, "i1", "i2", "w1", None, "w2"]
    left = [m.about for m in box.take_all()]
    assert left == ["c1", "c2", "c3", "c4"]  # past the bound: CRITICAL is never dropped


def test_rate_limit_and_quiet_hours_hold_messages_back_as_one_digest_but_never_critical(receiver):
    cfg = config(f"""
    destinations: {{hook: {{url: "{receiver.url}"}}}}
    routes: [{{to: hook}}]
    timeout_seconds: 1
    rate_limit: {{messages: 2, per_minutes: 0.02}}
    """, fast=False)
    outcomes = []
    courier = Courier(cfg.destinations["hook"], cfg.spec, lambda d, m, r: outcomes.append((m.about, r)))
    courier.start()
    for i in range(5):
        courier.outbox.put(Message(f"w{i}", "WARN", f"warning {i}", "x"))
    courier.outbox.put(Message("c", "CRITICAL", "halted", "x"))
    got = receiver.wait_for(4, timeout=8)
    courier.stop(1)
    titles = [m["title"] for m in got]
    assert titles[:3] == ["warning 0", "warning 1", "halted"]  # two, then CRITICAL past the limit
    assert titles[3] == "3 notification(s) held back"  # once the 1.2 s window allows again
    assert "- warning 2" in got[3]["message"] and "rate limit" in got[3]["message"]

    receiver.messages.clear()
    night = datetime(2024, 3, 2, 3, 0, tzinfo=timezone.utc)  # 22:00 in New York
    clock = [night]
    quiet = config(f"""
    destinations: {{hook: {{url: "{receiver.url}"}}}}
    routes: [{{to: hook}}]
    quiet_hours: {{start: "21:00", end: "07:00", except_severity: ERROR}}
    """, fast=False)
    courier = Courier(quiet.destinations["hook"], quiet.spec, lambda d, m, r: None, now=lambda: clock[0])
    courier.start()
    courier.outbox.put(Message("a", "INFO", "fill at night", "x"))
    courier.outbox.put(Message("b", "ERROR", "broker down", "x"))
    assert [m["title"] for m in receiver.wait_for(1)] == ["broker down"]
    clock[0] = night + timedelta(hours=10)  # 08:00 in New York
    got = receiver.wait_for(2)
    courier.stop(1)
    assert [m["title"] for m in got] == ["broker down", "1 notification(s) held back"]
    assert "quiet hours" in got[1]["message"]
