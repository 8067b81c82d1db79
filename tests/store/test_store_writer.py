"""One trading process per journal (the writer lock), and order rows that never go back."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest
from store_factories import make_order, make_run

from botctl.errors import EXIT_BUSY, JournalBusy
from botctl.records import NavSnapshot
from botctl.store import Store
from botctl.store.journal import backtest_journal
from botctl.store.writer_lock import WriterLock, lock_path


def test_a_second_trading_open_is_refused_naming_the_holder(db_path):
    with Store.open(db_path, trading=True):
        with pytest.raises(JournalBusy) as refused:
            Store.open(db_path, trading=True)
        assert refused.value.exit_code == EXIT_BUSY == 5
        message = str(refused.value)
        assert "\n" not in message and f"pid {os.getpid()}" in message and "since" in message
        # Readers, and writers that do not trade (kill's halt, resume), are never refused.
        with Store.open(db_path, readonly=True) as reader:
            assert reader.latest_run() is None
        with Store.open(db_path) as writer:
            writer.upsert_run(make_run("r2"))
    with Store.open(db_path, trading=True):  # released on close
        pass


def test_the_lock_is_one_per_file_whatever_the_spelling(tmp_path, db_path):
    link = tmp_path / "link.db"
    Store.open(db_path).close()
    link.symlink_to(db_path)
    assert lock_path(link) == lock_path(db_path) == os.path.realpath(db_path) + ".lock"
    with WriterLock(db_path):
        assert WriterLock(link).try_acquire().pid == os.getpid()


def test_a_killed_holder_leaves_no_lock(db_path):
    Store.open(db_path).close()
    code = ("import sys, time; from botctl.store.writer_lock import WriterLock; "
            "WriterLock(sys.argv[1], 'botctl run').acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(db_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        found = WriterLock(db_path).try_acquire()
        assert (found.pid, found.command) == (holder.pid, "botctl run")
    finally:
        holder.kill()
        holder.wait()
    with Store.open(db_path, trading=True) as store:
        assert store.writer_lock.held


def test_a_final_order_is_never_rewritten_by_an_upsert(store):
    filled = make_order("o1", status="filled", filled_qty=10.0, avg_fill_price=100.0)
    assert store.upsert_order(make_order("o1"))  # pending, inserted
    assert store.upsert_order(filled)  # pending -> filled
    for stale in (make_order("o1"), msgspec.structs.replace(filled, status="canceled")):
        assert not store.upsert_order(stale)
    assert store.get_order("o1") == filled


def test_account_state_ignores_backtests_and_replays(store):
    from store_factories import at

    for run_id, kind in (("paper-1", "paper"), ("replay-1", "replay"), ("bt-1", "backtest")):
        store.upsert_run(make_run(run_id, kind=kind))
    for i, run_id in enumerate(("paper-1", "replay-1", "bt-1")):
        store.insert(NavSnapshot(run_id=run_id, account="acct", ts_event=at(i), nav=100.0 + i, cash=1.0 + i,
                                 gross_exposure=0.0, leverage=0.0))
    latest, positions = store.account_state("acct")
    assert (latest.run_id, latest.nav, positions) == ("paper-1", 100.0, [])
    assert store.latest_nav("acct").run_id == "bt-1"  # what status shows: the newest mark of any run
    assert store.account_state("nobody") == (None, [])


@pytest.mark.parametrize(("journal", "backtests"), [
    ("botctl.db", "botctl-backtests.db"), ("/srv/bot/prod.sqlite", "/srv/bot/prod-backtests.sqlite"),
    ("journal", "journal-backtests"), ("botctl-backtests.db", "botctl-backtests.db"),
])
def test_backtests_are_journaled_beside_the_journal(journal, backtests):
    assert backtest_journal(journal) == backtests
