from __future__ import annotations

import pytest
from store_factories import at, make_order, make_run

from botctl.errors import BotctlError, StoreError, UsageError
from botctl.records import Event, Fill, NavSnapshot, Position
from botctl.store import DuplicateRecord, Store


def test_duplicate_client_order_id_is_refused(store):
    store.insert(make_order("o1"))
    with pytest.raises(DuplicateRecord, match="client_order_id='o1' is already in the journal"):
        store.insert(make_order("o1", qty=5.0))
    assert isinstance(DuplicateRecord("x"), BotctlError)
    assert store.get_order("o1").qty == 10.0


def test_upsert_order_updates_in_place(store):
    first_id = store.insert(make_order("o1"))
    store.insert(make_order("o2"))
    store.upsert_order(make_order("o1", status="filled", filled_qty=10.0, avg_fill_price=99.0))
    store.upsert_order(make_order("o3"))
    assert store.get_order("o1").status == "filled"
    rows = store.db.execute("SELECT id, client_order_id FROM orders ORDER BY id").fetchall()
    assert rows == [(first_id, "o1"), (first_id + 1, "o2"), (first_id + 2, "o3")]


def test_foreign_keys_are_enforced(store):
    with pytest.raises(StoreError, match="not in the journal"):
        store.insert(make_order("o1", run_id="ghost"))
    fill = Fill(fill_id="f1", client_order_id="ghost", run_id="r1", account="acct",
                symbol="SPY", side="buy", qty=1.0, price=1.0, commission=0.0, ts_event=at(0))
    with pytest.raises(StoreError, match="not in the journal"):
        store.insert(fill)


def test_order_queries(store):
    store.upsert_run(make_run("r2"))
    store.insert_many([
        make_order("a1", account="a", status="pending"),
        make_order("a2", account="a", status="filled"),
        make_order("a3", account="a", status="unknown", run_id="r2"),
        make_order("b1", account="b", status="accepted"),
    ])
    ids = lambda orders: [o.client_order_id for o in orders]  # noqa: E731
    assert ids(store.orders()) == ["a1", "a2", "a3", "b1"]
    assert ids(store.orders(account="a")) == ["a1", "a2", "a3"]
    assert ids(store.orders(status="filled")) == ["a2"]
    assert ids(store.orders(status=["filled", "accepted"])) == ["a2", "b1"]
    assert ids(store.orders(status=[])) == []
    assert ids(store.orders(run_id="r2")) == ["a3"]
    assert ids(store.orders(account="a", limit=2)) == ["a2", "a3"]
    assert ids(store.open_orders("a")) == ["a1", "a3"]
    assert ids(store.open_orders()) == ["a1", "a3", "b1"]


def test_insert_many_is_atomic(store):
    with pytest.raises(DuplicateRecord):
        store.insert_many([make_order("x1"), make_order("x2"), make_order("x1")])
    assert store.orders() == []


def test_transaction_rolls_back_everything(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert(make_order("t1"))
            with store.transaction():
                store.insert(make_order("t2"))
            raise RuntimeError("boom")
    assert store.orders() == []
    with store.transaction():
        store.insert(make_order("t1"))
        with pytest.raises(DuplicateRecord), store.transaction():
            store.insert(make_order("t2"))
            store.insert(make_order("t1"))
    assert [o.client_order_id for o in store.orders()] == ["t1"]


def test_insert_many_100k_orders(store, db_path):
    n = 100_000
    count = store.insert_many(make_order(f"o{i:06d}", status="filled") for i in range(n))
    assert count == n
    store.insert(make_order("last", account="acct"))
    assert [o.client_order_id for o in store.open_orders("acct")] == ["last"]
    assert store.db.execute("SELECT count(*) FROM orders").fetchone()[0] == n + 1
    newest = store.newest("orders", 2)
    assert [rec.client_order_id for _, rec in newest] == [f"o{n - 1:06d}", "last"]


def test_rows_after_and_newest_follow_a_table(store):
    for i, sev in enumerate(["INFO", "WARN", "ERROR", "INFO", "CRITICAL"]):
        store.insert(Event(ts_event=at(i), subsystem="s", type=f"t{i}", severity=sev,
                           account="a" if i % 2 == 0 else "b"))
    first = store.rows_after("events", 0, limit=2)
    assert [r.type for _, r in first] == ["t0", "t1"]
    rest = store.rows_after("events", first[-1][0], limit=10)
    assert [r.type for _, r in rest] == ["t2", "t3", "t4"]
    assert store.rows_after("events", rest[-1][0], limit=10) == []
    warn = store.rows_after("events", 0, limit=10, severity_at_least="warn")
    assert [r.type for _, r in warn] == ["t1", "t2", "t4"]
    assert [r.type for _, r in store.newest("events", 2, account="a")] == ["t2", "t4"]
    assert [e.type for e in store.events(account="a", severity_at_least="ERROR")] == ["t2", "t4"]
    assert [e.type for e in store.events(limit=1)] == ["t4"]
    with pytest.raises(UsageError, match="unknown severity"):
        store.events(severity_at_least="loud")
    with pytest.raises(ValueError):
        store.rows_after("events", 0, bogus="x")
    with pytest.raises(ValueError):
        store.rows_after("control", 0)


def _mark(store, ts, holdings, run_id="r1", account="acct"):
    with store.transaction():
        store.insert(NavSnapshot(run_id=run_id, account=account, ts_event=ts, nav=100.0,
                                 cash=100.0, gross_exposure=0.0, leverage=0.0))
        store.insert_many(
            Position(run_id=run_id, account=account, ts_event=ts, symbol=sym, qty=q,
                     avg_price=1.0, price=1.0, value=q)
            for sym, q in holdings.items()
        )


def test_positions_at_latest_follow_the_latest_mark(store):
    store.upsert_run(make_run("r2"))
    _mark(store, at(0), {"SPY": 1.0, "TLT": 2.0})
    _mark(store, at(1), {"SPY": 3.0})
    _mark(store, at(0), {"QQQ": 9.0}, run_id="r2")
    assert [p.symbol for p in store.positions_at_latest("acct")] == ["QQQ"]
    latest_r1 = store.positions_at_latest("acct", "r1")
    assert [(p.symbol, p.qty) for p in latest_r1] == [("SPY", 3.0)]
    _mark(store, at(2), {}, run_id="r1")  # went flat: no stale holdings
    assert store.positions_at_latest("acct", "r1") == []
    assert store.latest_nav("acct", "r1").ts_event == at(2)
    assert [n.ts_event for n in store.nav_series("acct", "r1")] == [at(0), at(1), at(2)]
    assert store.positions_at_latest("other") == [] and store.latest_nav("other") is None


def test_readonly_store_refuses_writes(store, db_path):
    with Store.open(db_path, readonly=True) as ro:
        with pytest.raises(StoreError, match="read-only"):
            ro.insert(make_order("o1"))
        with pytest.raises(StoreError, match="read-only"):
            ro.set_control(None)  # refused before the record is even looked at


def _plans(store, call):
    """EXPLAIN QUERY PLAN of every SELECT the Store runs inside `call`."""
    seen = []
    store.db.conn.set_trace_callback(seen.append)
    try:
        call(store)
    finally:
        store.db.conn.set_trace_callback(None)
    selects = [sql for sql in seen if sql.lstrip().startswith("SELECT")]
    assert selects
    return [" | ".join(r[3] for r in store.db.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in selects]


HOT_READS = {
    "open_orders": lambda s: s.open_orders("a"),
    "open_orders_all": lambda s: s.open_orders(),
    "orders_account_newest": lambda s: s.orders(account="a", limit=20),
    "orders_run": lambda s: s.orders(run_id="r1"),
    "get_order": lambda s: s.get_order("o1"),
    "tail_orders": lambda s: s.rows_after("orders", 10, 100),
    "newest_orders": lambda s: s.newest("orders", 10),
    "latest_nav": lambda s: s.latest_nav("a"),
    "latest_nav_run": lambda s: s.latest_nav("a", "r1"),
    "nav_series": lambda s: s.nav_series("a", "r1"),
    "positions": lambda s: (_mark(s, at(0), {"SPY": 1.0}), s.positions_at_latest("acct", "r1")),
    "positions_no_nav": lambda s: s.positions_at_latest("a", "r1"),
    "fills_of_order": lambda s: s.fills(client_order_id="o1"),
    "events_account": lambda s: s.events(account="a", limit=50),
    "tail_events_severe": lambda s: s.rows_after("events", 7, 100, account="a",
                                                 severity_at_least="ERROR"),
    "newest_events_severe": lambda s: s.newest("events", 20, severity_at_least="WARN"),
}


@pytest.mark.parametrize("name", sorted(HOT_READS))
def test_hot_reads_search_an_index(store, name):
    # Fast on a 1M-order journal means: never a full SCAN of a table, except walking the
    # rowid b-tree backwards for "newest N".
    for plan in _plans(store, HOT_READS[name]):
        assert "SEARCH" in plan or (name == "newest_orders" and plan == "SCAN orders"), plan
        if "TEMP B-TREE" in plan:  # sorting only the few matches of a selective filter
            assert any(f"{c}=?" in plan for c in ("status", "severity", "ts_event")), plan
        assert "SCAN" not in plan or name == "newest_orders", plan
