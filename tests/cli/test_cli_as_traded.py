"""Fills carry the price that traded beside the adjusted price returns use, and what people
read (tail, status) is the traded one, labelled."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timezone

import polars as pl
import pytest
from cli_support import backtest_journal, invoke, shipped_config

from botctl.adapters.file_data import bundled_data_path
from botctl.records import Order
from botctl.store import Store

SLIPPAGE = 2e-4  # the shipped accounts' slippage_bps: 2


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("astraded")
    db = backtest_journal(folder, "2020-03-01", "2020-04-30")
    with Store.open(db, readonly=True, create=False) as store:
        fills = store.fills()
    return folder, db, fills


def test_backtest_fills_record_the_open_that_traded_and_keep_the_adjusted_price(backtest):
    _, _, fills = backtest
    bars = pl.read_parquet(bundled_data_path())
    assert fills
    for fill in fills:
        day = fill.ts_event.date()  # fills at the open of the session they were placed in
        bar = bars.filter((pl.col("symbol") == fill.symbol) & (pl.col("date") == day)).row(0, named=True)
        slip = 1 + SLIPPAGE if fill.side == "buy" else 1 - SLIPPAGE
        assert fill.as_traded_price == pytest.approx(bar["open"] * slip, rel=1e-9)
        assert fill.price == pytest.approx(bar["open"] * bar["adj_close"] / bar["close"] * slip, rel=1e-9)
    xlk = [f for f in fills if f.symbol == "XLK" and f.ts_event.date() == date(2020, 4, 1)]
    assert xlk and all(77 < f.as_traded_price < 78 and 36 < f.price < 38 for f in xlk)


def test_tail_shows_what_traded_and_the_adjusted_price_beside_it(backtest):
    _, db, fills = backtest
    lines = invoke("--db", str(db), "tail", "--kind", "fills", "--symbol", "XLK", "-n", "50").stdout.splitlines()
    assert lines
    april = [line for line in lines if line.startswith("2020-04-01")]
    xlk = next(f for f in fills if f.symbol == "XLK" and f.ts_event.date() == date(2020, 4, 1))
    shares = xlk.qty * xlk.price / xlk.as_traded_price  # the same money at the price that printed
    assert april and (f"{shares:.4f} XLK @ {xlk.as_traded_price:,.4f} as traded "
                      f"(adjusted: {xlk.qty:.4f} @ {xlk.price:,.4f})") in april[0]
    assert shares < xlk.qty / 2  # XLK's later split and dividends put its adjusted 2020 price under half the print


def test_status_says_simulated_positions_are_marked_at_adjusted_closes(backtest):
    folder, db, _ = backtest
    body = json.loads(invoke("--config-dir", str(folder), "--db", str(db), "status", "--json").stdout)
    assert {a["price_basis"] for a in body["accounts"].values()} == {"adjusted"}
    text = invoke("--config-dir", str(folder), "--db", str(db), "status").stdout
    assert "positions, marked at total-return adjusted closes" in text


def test_alpaca_fills_are_the_brokers_own_prints():
    from fakes.fake_alpaca import FakeAlpaca

    from botctl.adapters.alpaca_broker import AlpacaBroker

    now = datetime(2026, 1, 5, 15, 0, tzinfo=timezone.utc)
    with FakeAlpaca(api_key="k", secret_key="s", now=lambda: now) as fake:
        fake.market_open = True
        fake.set_price("SPY", 587.25)
        broker = AlpacaBroker("k", "s", paper=True, base_url=fake.url, timeout=2.0, retries=0, backoff=0.0,
                              sleep=lambda s: None)
        order = Order(client_order_id="c-1", run_id="r", account="a", symbol="SPY", side="buy", qty=2,
                      status="pending", ts_init=now, ts_event=now, ref_price=587.25)
        placed, fills = broker.submit(order, now)
        if not fills:
            fake.fill_pending()
            fills = broker.fills_for(broker.get_order("c-1", placed))
    assert fills and all(f.as_traded_price == f.price == pytest.approx(587.25) for f in fills)


def test_a_journal_from_before_m005_is_upgraded_and_its_fills_say_their_price_is_the_journals(tmp_path):
    from sqlite_utils import Database, Migrations

    from botctl.store.schema import MIGRATION_SET, STEPS

    db = tmp_path / "old.db"
    old = Migrations(MIGRATION_SET)
    for name, fn in STEPS:
        if name in ("m001_initial", "m002_guard_state"):
            old(name=name)(fn)
    old.apply(Database(db))
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO runs (run_id, kind, plan_id, started_at, status, note) VALUES "
                 "('r1', 'backtest', 'p', '2020-04-01T14:00:00.000000Z', 'finished', '')")
    conn.execute("INSERT INTO orders (client_order_id, run_id, account, symbol, side, qty, status, ts_init, ts_event, "
                 "order_type, reason, filled_qty) VALUES ('c1', 'r1', 'a', 'XLK', 'buy', 10, 'filled', "
                 "'2020-04-01T14:00:00.000000Z', '2020-04-01T14:00:00.000000Z', 'market', 'rebalance', 10)")
    conn.execute("INSERT INTO fills (fill_id, client_order_id, run_id, account, symbol, side, qty, price, commission, "
                 "ts_event) VALUES ('f1', 'c1', 'r1', 'a', 'XLK', 'buy', 10, 37.05, 0, '2020-04-01T14:00:00.000000Z')")
    conn.commit()
    conn.close()
    with Store.open(db) as store:  # a writer applies m005
        assert "m005_fill_as_traded_price" in store.applied_migrations()
        assert [f.as_traded_price for f in store.fills()] == [None]
    line = invoke("--db", str(db), "tail", "--kind", "fills").stdout.strip()
    assert line.endswith("a buy  10.0000 XLK @ 37.0500 (as journaled; as-traded price not recorded) commission 0.00")


def test_replay_fills_record_what_traded_too(tmp_path):
    """The replay drives the same simulated book through the scheduler: its fills carry the
    traded price as well (2020-04-01 is the monthly rebalance)."""
    folder = shipped_config(tmp_path)
    db = tmp_path / "botctl.db"
    result = invoke("--config-dir", str(folder), "--db", str(db), "run", "--replay", "2020-03-31:2020-04-01")
    assert result.exit_code == 0, result.output
    with Store.open(db, readonly=True, create=False) as store:
        replay = store.latest_run()
        fills = store.fills(run_id=replay.run_id)
    assert replay.kind == "replay" and fills
    bars = pl.read_parquet(bundled_data_path())
    for fill in fills:
        bar = bars.filter((pl.col("symbol") == fill.symbol) & (pl.col("date") == fill.ts_event.date())).row(0, named=True)
        assert fill.as_traded_price / fill.price == pytest.approx(bar["close"] / bar["adj_close"], rel=1e-9)


def test_a_paper_cycle_on_the_simulated_broker_records_the_open_that_traded(tmp_path):
    """`run --once` on a sim account is sized and filled at its current price, the session's
    open (the clock is 2020-04-01, 11:00 New York): its as-traded price is that open as it
    traded, not the adjusted one."""
    folder = shipped_config(tmp_path)
    db = tmp_path / "botctl.db"
    result = invoke("--config-dir", str(folder), "--db", str(db), "run", "--once", "--yes",
                    env={"BOTCTL_CLOCK": "2020-04-01T15:00:00Z*1"})
    assert result.exit_code == 0, result.output
    with Store.open(db, readonly=True, create=False) as store:
        fills = store.fills()
    assert fills
    bars = pl.read_parquet(bundled_data_path()).filter(pl.col("date") == date(2020, 4, 1))
    for fill in fills:
        bar = bars.filter(pl.col("symbol") == fill.symbol).row(0, named=True)
        slip = 1 + SLIPPAGE if fill.side == "buy" else 1 - SLIPPAGE
        assert fill.as_traded_price == pytest.approx(bar["open"] * slip, rel=1e-9)
        assert fill.price == pytest.approx(bar["open"] * bar["adj_close"] / bar["close"] * slip, rel=1e-9)
