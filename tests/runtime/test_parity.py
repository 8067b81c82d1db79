"""Parity: one plan, one span of bars, several modes, the same trading.

(a) `botctl backtest` and (b) `botctl run --replay --speed max` (real subprocesses, real
SQLite files) over a few months that include a day of suspect data; then the account cycle
itself with two ledgers, a backtest book's lists and the paper loop's journal
(runtime.live.LiveAccount), against a broker that rejects orders until the max_rejects
breaker trips. Orders (symbol, side, quantity to 1e-9, the client-id scheme), fill prices,
events (type, subsystem, details' keys) and NAV series must agree."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import msgspec
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
START, END = "2020-01-02", "2020-05-29"
SUSPECT_DAY = date(2020, 3, 31)  # the bar before April's rebalance: April is decided a day late
# Events only one mode records (a run's own start and end).
RUN_EVENTS = ("run.",)


def botctl(db: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db), "--data", str(data),
                           *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def query(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def scheme(cid: str) -> str:
    """A client id without its namespace (each run's own id): account, cycle date, symbol, side."""
    match = re.fullmatch(r"bc-.+?-(rotation-sim|adaptive-sim)-(\d{8})T\d{4}-(.+)", cid)
    assert match, cid
    return "-".join(match.groups())


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from botctl.adapters.file_data import load_bars

    root = tmp_path_factory.mktemp("parity")
    frame = load_bars().filter(pl.col("date") >= date(2018, 1, 1))
    bad = (pl.col("symbol") == "XLE") & (pl.col("date") == SUSPECT_DAY)
    frame = frame.with_columns(*(pl.when(bad).then(pl.col(c) * 5).otherwise(pl.col(c)).alias(c)
                                 for c in ("open", "high", "low", "close", "adj_close")))
    data = root / "bars.parquet"
    frame.write_parquet(data)
    backtest = json.loads(botctl(root / "bt.db", data, "backtest", "--start", START, "--end", END, "--json").stdout)
    botctl(root / "rp.db", data, "run", "--replay", f"{START}:{END}", "--speed", "max", "--json")
    bt_run = backtest["run_id"]
    return {"bt": root / "bt-backtests.db", "rp": root / "rp.db", "bt_run": bt_run}


def orders(db: Path, account: str, run: str | None = None) -> list[tuple]:
    rows = query(db, "SELECT client_order_id, symbol, side, qty, status FROM orders WHERE account = ?"
                     + (" AND run_id = ?" if run else "") + " ORDER BY client_order_id", account, *([run] if run else []))
    return [(scheme(c), s, side, q, st) for c, s, side, q, st in rows]


@pytest.mark.parametrize("account", ["rotation-sim", "adaptive-sim"])
def test_backtest_and_replay_place_the_same_orders_at_the_same_prices(both, account):
    bt, rp = orders(both["bt"], account, both["bt_run"]), orders(both["rp"], account)
    assert bt and [o[:3] + (o[4],) for o in bt] == [o[:3] + (o[4],) for o in rp]
    for a, b in zip(bt, rp):
        assert a[3] == pytest.approx(b[3], abs=1e-9), (a, b)
    fills = "SELECT symbol, side, qty, price FROM fills WHERE account = ? {} ORDER BY symbol, ts_event, side"
    bt_fills = query(both["bt"], fills.format("AND run_id = ?"), account, both["bt_run"])
    rp_fills = query(both["rp"], fills.format(""), account)
    assert len(bt_fills) == len(rp_fills) > 0
    for a, b in zip(bt_fills, rp_fills):
        assert a[:2] == b[:2] and a[2] == pytest.approx(b[2], abs=1e-9) and a[3] == pytest.approx(b[3], rel=1e-12)


@pytest.mark.parametrize("account", ["rotation-sim", "adaptive-sim"])
def test_backtest_and_replay_record_the_same_events_and_nav(both, account):
    sql = "SELECT type, subsystem, details FROM events WHERE account = ? {} ORDER BY id"
    def shape(rows):
        return sorted((t, s, tuple(sorted(json.loads(d or "{}")))) for t, s, d in rows if not t.startswith(RUN_EVENTS))
    bt = shape(query(both["bt"], sql.format("AND run_id = ?"), account, both["bt_run"]))
    rp = shape(query(both["rp"], sql.format(""), account))
    assert bt == rp
    assert ("data.rejected", "guard", ("due", "rule", "symbols")) in bt  # the suspect day was refused in both
    nav = "SELECT substr(ts_event, 1, 10), nav FROM nav WHERE account = ? {} ORDER BY ts_event"
    bt_nav = dict(query(both["bt"], nav.format("AND run_id = ?"), account, both["bt_run"]))
    rp_nav = query(both["rp"], nav.format(""), account)[1:]  # after the replay's opening mark
    assert len(rp_nav) >= 95
    for day, value in rp_nav:
        assert bt_nav[day] == pytest.approx(value, rel=1e-12), day


# --- the cycle with the paper loop's journal and with a backtest book's lists ----------------


def test_the_cycle_records_the_same_with_the_journal_and_with_a_book(tmp_path):
    """A broker that rejects every order, max_rejects 2: both ledgers send two orders, trip
    the breaker once, withdraw the rest with a `halted` block, with identical events."""
    from botctl.adapters.file_data import load_bars
    from botctl.cli.common import Globals, load_plan
    from botctl.engine.engine import account_signals
    from botctl.runtime.book import Book
    from botctl.runtime.live import LiveAccount
    from botctl.spec.model import RiskSpec
    from botctl.store import Store
    from botctl.strategy.bars import bars_from_frame

    plan = load_plan(Globals(ROOT, Path("unused.db"), None))
    account = msgspec.structs.replace(plan.accounts[0], risk=RiskSpec(max_rejects=2),
                                      sim=msgspec.structs.replace(plan.accounts[0].sim, fill="close"))
    bars = bars_from_frame(load_bars(), account.symbols)
    day = date(2021, 3, 1)
    row = bars.index_of(day)
    now = datetime(2021, 3, 1, 15, 0, tzinfo=timezone.utc)

    def reject_all(broker):
        broker.submit = lambda order, at: (msgspec.structs.replace(order, status="rejected", ts_event=at,
                                                                   reject_reason="refused"), [])

    book = Book(account, bars, run_id="r", namespace="n")
    reject_all(book.broker)
    book.rebalance(row, [m.name for m in account.models], now)

    with Store.open(tmp_path / "j.db") as store:
        from botctl.runtime.wiring import journal_sim_broker

        from botctl.records import Run

        store.upsert_run(Run(run_id="r", kind="paper", plan_id="n", started_at=now, pid=1, heartbeat_at=now))
        broker = journal_sim_broker(account, store)
        reject_all(broker)
        live = LiveAccount(account, broker, store, plan_id="n", run_id="r")
        live.reconcile(now)
        assert live.guard.high_water_mark == book.guard.high_water_mark == account.starting_cash
        sent = live.cycle(bars, account_signals(account, bars), [m.name for m in account.models], now, now)
        journal_events = [(e.type, e.subsystem, sorted(e.details)) for e in store.events(account=account.id)
                          if e.subsystem != "live"]
        journal_orders = store.orders(account.id)

    book_events = [(e.type, e.subsystem, sorted(e.details)) for e in book.events]
    assert journal_events == book_events
    assert [t for t, _, _ in book_events].count("breaker.tripped") == 1
    assert [(o.client_order_id, o.symbol, o.side, o.qty, o.status) for o in sent] == \
        [(o.client_order_id, o.symbol, o.side, o.qty, o.status) for o in book.orders]
    assert [o.status for o in sent] == ["rejected", "rejected"]
    # The journal also holds the withdrawn orders (committed before any send): canceled, unsent.
    assert sorted(o.status for o in journal_orders) == sorted(["rejected"] * 2 + ["canceled"] * (len(journal_orders) - 2))
