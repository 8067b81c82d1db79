"""Reading the journal must stay fast to start: `botctl status` has a 300 ms budget, and
importing sqlite_utils (which imports pandas when installed) alone costs more than that. Only
creating or migrating a journal may import it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from store_factories import make_order, make_run

from botctl.records import NavSnapshot
from botctl.store import MIGRATION_NAMES, Store
from botctl.store.schema import build_migrations, known_names, migrations

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _journal(db_path: Path) -> Path:
    with Store.open(db_path) as s:
        s.upsert_run(make_run())
        s.insert(make_order(account="a"))
        s.insert(NavSnapshot(run_id="r1", account="a", ts_event=make_run().started_at,
                             nav=1.0, cash=1.0, gross_exposure=0.0, leverage=0.0))
    return db_path


def test_readonly_open_and_reads_do_not_import_sqlite_utils_or_pandas(db_path):
    path = _journal(db_path)
    out = _run(
        "import sys; from botctl.store import Store; "
        "s = Store.open(sys.argv[1], create=False, readonly=True); "
        "s.orders(limit=5); s.latest_nav('a'); "
        "print('pandas' in sys.modules, 'sqlite_utils' in sys.modules)",
        str(path),
    )
    assert out == "False False"


def test_status_reads_do_not_import_sqlite_utils(db_path):
    path = _journal(db_path)
    out = _run(
        "import sys; from botctl.store import Store; "
        "from botctl.store.overview import account_view, journal_accounts, run_view; "
        "s = Store.open(sys.argv[1], create=False, readonly=True); "
        "run_view(s); [account_view(s, a, s.controls()) for a in journal_accounts(s)]; "
        "s.newest('events', 5); s.rows_after('fills', 0); s.positions_at_latest('a'); "
        "s.applied_migrations(); s.is_current(); "
        "print(journal_accounts(s), 'sqlite_utils' in sys.modules)",
        str(path),
    )
    assert out == "['a'] False"


def test_writable_open_of_current_journal_does_not_import_sqlite_utils(db_path):
    path = _journal(db_path)
    out = _run(
        "import sys; from botctl.store import Store; "
        "s = Store.open(sys.argv[1]); s.heartbeat('r1', s.latest_run().started_at); "
        "print(s.is_current(), 'sqlite_utils' in sys.modules)",
        str(path),
    )
    assert out == "True False"


def test_creating_a_journal_applies_the_sqlite_utils_migrations(db_path):
    out = _run(
        "import sys; from botctl.store import Store; "
        "s = Store.open(sys.argv[1]); print(s.applied_migrations(), 'sqlite_utils' in sys.modules)",
        str(db_path),
    )
    assert out == f"{list(MIGRATION_NAMES)} True"


def test_migration_names_match_the_migration_set():
    assert known_names() == list(MIGRATION_NAMES) == known_names(migrations())
    assert migrations() is migrations()
    extra = build_migrations(("m999_test", lambda db: None))
    assert known_names(extra) == [*MIGRATION_NAMES, "m999_test"]


def test_db_is_a_lazy_sqlite_utils_view_of_the_connection(store):
    assert store.db is store.db
    assert store.db.conn is store.conn
    assert store.db["runs"].count == 1

def test_creating_a_journal_leaves_pandas_unimported_and_still_importable(db_path):
    # A new journal (every backtest writes one) paid ~0.4 s for pandas, which sqlite_utils
    # imports when it can and botctl never uses; alpaca-py does need it afterwards.
    out = _run(
        "import sys; from botctl.store import Store; "
        "s = Store.open(sys.argv[1]); s.db; before = 'pandas' in sys.modules; "
        "import pandas; print(s.applied_migrations() == s.applied_migrations(), before, pandas.DataFrame is not None)",
        str(db_path),
    )
    assert out == "True False True"


def test_sqlite_utils_keeps_pandas_when_it_was_imported_first(db_path):
    out = _run(
        "import sys, pandas; from botctl.store import Store; s = Store.open(sys.argv[1]); "
        "import sqlite_utils.db; print(sqlite_utils.db.pd is pandas)",
        str(db_path),
    )
    assert out == "True"
