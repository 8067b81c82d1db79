from __future__ import annotations

import os
import sqlite3

import pytest
from store_factories import make_order, make_run

from botctl.errors import StoreError
from botctl.store import APPLICATION_ID, Store
from botctl.store.schema import MIGRATION_NAMES, build_migrations


def _pragma(path, name):
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_new_file_is_created_in_wal_with_application_id(tmp_path):
    path = tmp_path / "sub" / "dir" / "botctl.db"
    with Store.open(path) as store:
        assert store.applied_migrations() == list(MIGRATION_NAMES)
        assert store.is_current()
        assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert _pragma(path, "journal_mode") == "wal"
    assert _pragma(path, "application_id") == APPLICATION_ID


def test_trading_writes_are_synced_to_disk_and_rehearsals_may_trade_that_for_speed(tmp_path):
    # FULL: each commit is on disk before the broker hears of an order; NORMAL (backtests and
    # replays) is still safe against a crash of the process, not against a power cut.
    with Store.open(tmp_path / "trading.db", trading=True) as store:
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    with Store.open(tmp_path / "rehearsal.db", trading=True, durable=False) as store:
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_reopen_keeps_data(db_path):
    with Store.open(db_path) as s:
        s.upsert_run(make_run())
        s.insert(make_order())
    with Store.open(db_path) as s:
        assert s.get_order("o1") == make_order()
        assert s.applied_migrations() == list(MIGRATION_NAMES)


def test_empty_file_is_initialised(db_path):
    db_path.write_bytes(b"")
    with Store.open(db_path) as s:
        assert s.applied_migrations() == list(MIGRATION_NAMES)


def test_pending_migrations_are_applied_on_open(db_path):
    Store.open(db_path, migrations=build_migrations()).close()

    def m099_add_notes(db):
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")

    newer = build_migrations(("m099_add_notes", m099_add_notes))
    with pytest.raises(StoreError, match=rf"older botctl schema \({MIGRATION_NAMES[-1]}\)"):
        Store.open(db_path, readonly=True, migrations=newer)
    with Store.open(db_path, migrations=newer) as s:
        assert s.applied_migrations() == [*MIGRATION_NAMES, "m099_add_notes"]
        assert s.is_current(newer)
        assert s.db["notes"].exists()
    with Store.open(db_path, readonly=True, migrations=newer) as s:
        assert s.is_current(newer)


def test_failed_migration_rolls_back(db_path):
    Store.open(db_path).close()

    def m099_broken(db):
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Store.open(db_path, migrations=build_migrations(("m099_broken", m099_broken)))
    with Store.open(db_path) as s:
        assert s.applied_migrations() == list(MIGRATION_NAMES)
        assert not s.db["half"].exists()


def test_database_from_newer_botctl_is_refused(db_path):
    newer = build_migrations(("m099_future", lambda db: None))
    Store.open(db_path, migrations=newer).close()
    for readonly in (False, True):
        with pytest.raises(StoreError) as info:
            Store.open(db_path, readonly=readonly)
        assert str(info.value) == (
            f"{db_path} was written by a newer botctl (schema m099_future); upgrade botctl"
        )


def test_foreign_sqlite_file_is_refused_untouched(db_path):
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    before = db_path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"is not a botctl database \(foreign schema: customers\)"):
            Store.open(db_path, readonly=readonly)
    assert db_path.read_bytes() == before
    assert not (db_path.parent / (db_path.name + "-wal")).exists()


def test_foreign_application_id_is_refused(db_path):
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA application_id = 1234")
    with pytest.raises(StoreError, match="foreign schema: application_id 0x4d2"):
        Store.open(db_path)


def test_other_sqlite_utils_migration_set_is_foreign(db_path):
    from sqlite_utils import Database, Migrations

    other = Migrations("someapp")
    other(name="m1")(lambda db: None)
    other.apply(Database(db_path))
    with pytest.raises(StoreError, match=r"foreign schema: someapp"):
        Store.open(db_path)


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"hello, this is a text file\n" * 10, b"SQLite format 3\x00" + b"\xff" * 200],
)
def test_not_a_database(db_path, content):
    db_path.write_bytes(content)
    for readonly in (False, True):
        with pytest.raises(StoreError) as info:
            Store.open(db_path, readonly=readonly)
        msg = str(info.value)
        assert msg.startswith(f"{db_path} is not a botctl database (")
        assert "\n" not in msg


def test_directory_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a directory, not a botctl database"):
        Store.open(tmp_path)
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path, readonly=True)


def test_missing_file_without_create(db_path):
    expected = f"no database at {db_path}; run `botctl run` or `botctl backtest` first"
    for kwargs in ({"readonly": True}, {"create": False}):
        with pytest.raises(StoreError) as info:
            Store.open(db_path, **kwargs)
        assert str(info.value) == expected
    assert not db_path.exists()


def test_empty_file_readonly_is_missing_data(db_path):
    db_path.write_bytes(b"")
    with pytest.raises(StoreError, match="no database at"):
        Store.open(db_path, readonly=True)
    with pytest.raises(StoreError, match="no database at"):
        Store.open(db_path, create=False)


def test_readonly_open_never_writes(db_path):
    with Store.open(db_path) as s:
        s.upsert_run(make_run())
    before = db_path.read_bytes()
    with Store.open(db_path, readonly=True) as ro:
        assert ro.latest_run().run_id == "r1"
        with pytest.raises(StoreError, match="read-only"):
            ro.heartbeat("r1", make_run().started_at)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro.db.execute("DELETE FROM runs")  # ad-hoc SQL cannot write either
    # SQLite may leave an empty -wal/-shm pair (WAL readers need shared memory); the
    # database itself is untouched.
    assert db_path.read_bytes() == before
    wal = db_path.with_name(db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_readonly_reader_sees_live_writer(db_path):
    with Store.open(db_path) as writer:
        writer.upsert_run(make_run())
        with Store.open(db_path, readonly=True) as reader:
            writer.insert(make_order("o1"))
            assert [o.client_order_id for o in reader.orders()] == ["o1"]


def test_unwritable_file_or_directory(db_path, monkeypatch):
    Store.open(db_path).close()
    real_access = os.access
    # Tests may run as root, where chmod does not deny anything; fake the permission check.
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(db_path) and real_access(p, mode))
    with pytest.raises(StoreError, match=f"^{db_path} is read-only; botctl needs to write to it$"):
        Store.open(db_path)
    with Store.open(db_path, readonly=True):
        pass
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(db_path.parent))
    with pytest.raises(StoreError, match="directory .* is read-only"):
        Store.open(db_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_chmod_readonly_file(db_path):
    Store.open(db_path).close()
    db_path.chmod(0o444)
    with pytest.raises(StoreError, match="read-only"):
        Store.open(db_path)


def test_lock_timeout_is_a_store_error(db_path, monkeypatch):
    import botctl.store.opening as opening

    monkeypatch.setattr(opening, "BUSY_TIMEOUT_S", 0.1)
    with Store.open(db_path) as a:
        a.upsert_run(make_run())
        with a.transaction(), Store.open(db_path) as b:
            with pytest.raises(StoreError, match="is locked by another process"):
                b.insert(make_order("o1"))


def test_a_journal_from_the_first_schema_gains_the_guard_state_table(tmp_path):
    from datetime import datetime, timezone

    from sqlite_utils import Database, Migrations

    from botctl.store.schema import MIGRATION_SET, m001_initial

    path = tmp_path / "first.db"
    db = Database(path)
    first = Migrations(MIGRATION_SET)
    first(name="m001_initial")(m001_initial)
    first.apply(db)
    db.conn.close()
    with Store.open(path) as store:
        assert store.applied_migrations() == list(MIGRATION_NAMES)
        store.put_guard_state("live", "acct", b'{"high_water_mark": 1.0}', datetime.now(timezone.utc))
        assert store.guard_state("live", "acct") == b'{"high_water_mark": 1.0}'
        assert store.guard_state("live", "other") is None
