from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
import pytest
from store_factories import T0, at, make_order, make_run

from botctl.errors import StoreError
from botctl.records import Control, Event, Fill, NavSnapshot, Position, Run
from botctl.store import Store
from botctl.store.schema import RECORD_TYPES


def test_tables_mirror_records(store):
    for table, cls in RECORD_TYPES.items():
        cols = [c.name for c in store.db[table].columns]
        fields = [f.name for f in msgspec.structs.fields(cls)]
        assert [c for c in cols if c != "id"] == fields, table
        assert ("id" in cols) == (table != "control")


def test_every_record_type_round_trips(store, db_path):
    run = make_run(
        "r2", status="finished", pid=42, ended_at=at(90), heartbeat_at=at(89),
        period_start="2020-01-01", period_end="2020-12-31", note="n",
    )
    order = make_order(
        "o1", ref_price=101.5, filled_qty=10.0, avg_fill_price=101.25, broker_order_id="b1",
        status="filled", ts_event=at(1), reason="drift",
    )
    fill = Fill(
        fill_id="f1", client_order_id="o1", run_id="r1", account="acct", symbol="SPY",
        side="buy", qty=10.0, price=101.25, commission=0.0, ts_event=at(1),
    )
    pos = Position(
        run_id="r1", account="acct", ts_event=at(2), symbol="SPY", qty=10.0, avg_price=101.25,
        price=102.0, value=1020.0,
    )
    nav = NavSnapshot(
        run_id="r1", account="acct", ts_event=at(2), nav=10000.0, cash=8980.0,
        gross_exposure=1020.0, leverage=0.102,
    )
    details = {"a": 1, "nested": {"list": [1, 2.5, "x", None, True]}, "s": "ü"}
    event = Event(
        ts_event=at(3), subsystem="risk", type="halt", severity="CRITICAL", run_id="r1",
        account="acct", symbol="SPY", message="halted", details=details,
    )
    control = Control(
        account="acct", halted=True, reason="drawdown", since=at(3), who="risk",
        flatten=True, acked_at=at(4),
    )
    store.upsert_run(run)
    for rec in (order, fill, pos, nav, event):
        assert store.insert(rec) > 0
    store.set_control(control)
    store.close()

    with Store.open(db_path, readonly=True) as ro:
        assert ro.get_run("r2") == run
        assert ro.get_order("o1") == order
        assert ro.fills() == [fill]
        assert ro.positions_at_latest("acct") == [pos]
        assert ro.latest_nav("acct") == nav
        assert ro.nav_series("acct", "r1") == [nav]
        got = ro.events()
        assert got == [event] and got[0].details == details
        assert ro.controls() == {"acct": control}
        assert ro.get_order("nope") is None


def test_defaults_and_nulls_round_trip(store):
    ev = Event(ts_event=T0, subsystem="engine", type="tick")
    store.insert(ev)
    assert store.events() == [ev]
    ctl = Control(account="*", halted=False, reason="", since=T0, who="cli")
    store.set_control(ctl)
    assert store.controls()["*"] == ctl and store.controls()["*"].halted is False


def test_timestamps_are_utc_text_and_compare_equal(store):
    eastern = timezone(timedelta(hours=-5))
    local = datetime(2024, 3, 1, 9, 30, tzinfo=eastern)
    store.insert(Event(ts_event=local, subsystem="x", type="y"))
    raw = store.db.execute("SELECT ts_event FROM events").fetchone()[0]
    assert raw == "2024-03-01T14:30:00.000000Z"
    back = store.events()[0].ts_event
    assert back == local and back.utcoffset() == timedelta(0)


def test_naive_datetime_is_refused(store):
    with pytest.raises(StoreError, match="naive"):
        store.insert(Event(ts_event=datetime(2024, 1, 1), subsystem="x", type="y"))


def test_one_instant_is_stored_as_one_text_and_a_naive_one_is_still_refused(store):
    utc = datetime(2024, 3, 1, 14, 30, 0, 250, tzinfo=timezone.utc)
    new_york = utc.astimezone(timezone(timedelta(hours=-5)))
    for when in (utc, new_york, utc):  # the second and third are formatted from what the first gave
        store.insert(Event(ts_event=when, subsystem="x", type="y"))
    rows = store.db.execute("SELECT ts_event FROM events").fetchall()
    assert [r[0] for r in rows] == ["2024-03-01T14:30:00.000250Z"] * 3
    with pytest.raises(StoreError, match="naive"):  # the same wall time without a zone
        store.insert(Event(ts_event=utc.replace(tzinfo=None), subsystem="x", type="y"))


def test_insert_many_formats_an_instant_once_and_refuses_a_naive_one_writing_nothing(store):
    utc = datetime(2024, 3, 1, 14, 30, 0, 250, tzinfo=timezone.utc)
    new_york = utc.astimezone(timezone(timedelta(hours=-5)))
    later = utc + timedelta(days=1)
    events = [Event(ts_event=when, subsystem="x", type="y") for when in (utc, new_york, later, utc)]
    assert store.insert_many(events) == 4
    rows = store.db.execute("SELECT ts_event FROM events ORDER BY id").fetchall()
    first, second = "2024-03-01T14:30:00.000250Z", "2024-03-02T14:30:00.000250Z"
    assert [r[0] for r in rows] == [first, first, second, first]
    naive = Event(ts_event=utc.replace(tzinfo=None), subsystem="x", type="y")
    with pytest.raises(StoreError, match="naive"):
        store.insert_many([events[0], naive])
    assert store.db.execute("SELECT count(*) FROM events").fetchone()[0] == 4


def test_run_upsert_and_heartbeat(store):
    store.upsert_run(make_run("r1", status="finished", ended_at=at(5)))
    store.heartbeat("r1", at(6))
    run = store.latest_run()
    assert isinstance(run, Run)
    assert (run.status, run.ended_at, run.heartbeat_at) == ("finished", at(5), at(6))
    assert len(store.runs()) == 1
    with pytest.raises(StoreError, match="no run 'ghost'"):
        store.heartbeat("ghost", at(7))


def test_latest_run_is_newest_inserted(store):
    store.upsert_run(make_run("r2"))
    assert store.latest_run().run_id == "r2"
    assert [r.run_id for r in store.runs()] == ["r1", "r2"]
