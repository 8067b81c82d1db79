"""Signal books' position state in the journal (m007_position_state): saved per scope, account
and model, read back identically by another process, and upgraded into an older journal."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timezone

import pytest

from botctl.engine.positions import BookState, ExitMark, ModelBook, OpenPosition, decode_books, encode_books
from botctl.store import Store
from botctl.store.schema import MIGRATION_NAMES

NOW = datetime(2024, 3, 1, 15, 0, tzinfo=timezone.utc)
STATE = BookState(models={
    "Book": ModelBook(
        positions={"XLK": OpenPosition(symbol="XLK", qty=12.5, entered_qty=20.0, decided_on=date(2024, 2, 1),
                                       entry_price=101.25, high_close=110.0, stage=1, entry_score=1.5, score=0.7)},
        exits={"XLF": ExitMark(date(2024, 2, 20), "trailing_stop")}, displaced_on=date(2024, 2, 10), as_of=date(2024, 2, 29)),
    "Other": ModelBook(),
})


def test_the_migration_is_named_and_applied(db_path):
    assert "m007_position_state" in MIGRATION_NAMES
    with Store.open(db_path) as store:
        assert "m007_position_state" in store.applied_migrations()


def test_position_state_round_trips_per_scope_account_and_model(db_path):
    with Store.open(db_path) as store:
        assert store.position_states("live", "acct") == {}
        store.put_position_states("live", "acct", encode_books(STATE), NOW)
        store.put_position_states("run-1", "acct", {"Book": b"{}"}, NOW)
        assert decode_books(store.position_states("live", "acct")) == STATE
        assert set(store.position_states("run-1", "acct")) == {"Book"}
        assert store.position_states("live", "other") == {}
        # a later save replaces the model's document, and leaves the others
        moved = BookState(models={"Book": ModelBook(as_of=date(2024, 3, 1))})
        store.put_position_states("live", "acct", encode_books(moved), NOW)
        assert decode_books(store.position_states("live", "acct")).models == {"Book": moved.models["Book"],
                                                                               "Other": ModelBook()}


def test_another_process_reads_what_was_saved(db_path):
    with Store.open(db_path) as store:
        store.put_position_states("live", "acct", encode_books(STATE), NOW)
    code = ("import sys; from botctl.store import Store; from botctl.engine.positions import decode_books; "
            "s = Store.open(sys.argv[1], readonly=True); b = decode_books(s.position_states('live', 'acct')); "
            "p = b.models['Book'].positions['XLK']; print(p.qty, p.stage, p.high_close, b.models['Book'].exits['XLF'].rule)")
    out = subprocess.run([sys.executable, "-c", code, str(db_path)], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["12.5", "1", "110.0", "trailing_stop"]


def test_an_unreadable_document_is_an_error_naming_the_model(db_path):
    with Store.open(db_path) as store:
        store.put_position_states("live", "acct", {"Book": b'{"positions": 3}'}, NOW)
        with pytest.raises(ValueError, match="model 'Book' is unreadable"):
            decode_books(store.position_states("live", "acct"))


def test_a_journal_from_before_m007_gains_the_table(tmp_path):
    from sqlite_utils import Database, Migrations

    from botctl.store.schema import MIGRATION_SET, STEPS

    path = tmp_path / "old.db"
    db = Database(path)
    old = Migrations(MIGRATION_SET)
    before = [name for name, _ in STEPS].index("m007_position_state")
    for name, fn in STEPS[:before]:  # what a journal written before m007 was released holds
        old(name=name)(fn)
    old.apply(db)
    db.conn.close()
    with Store.open(path) as store:
        assert store.applied_migrations() == list(MIGRATION_NAMES)
        store.put_position_states("live", "acct", encode_books(STATE), NOW)
        assert decode_books(store.position_states("live", "acct")) == STATE
