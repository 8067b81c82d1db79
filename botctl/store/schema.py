"""The journal's SQLite schema as an ordered sqlite-utils migration set.

Migrations are append-only: a released migration is never edited, a change is a new function
registered after the others. `Store.open` refuses a database that has migrations applied that
this set does not know (written by a newer botctl), so names must stay stable.

Importing sqlite_utils costs ~0.4 s when it imports pandas (installed for alpaca-py), so this
module never does at import time: the Migrations set is built on first use by `migrations()`,
opening an up-to-date journal compares applied names against `MIGRATION_NAMES` with plain SQL,
and `load_sqlite_utils` imports it without pandas, which botctl never hands it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botctl.records import Control, Event, Fill, NavSnapshot, Order, Position, Record, Run, Signal

if TYPE_CHECKING:
    from sqlite_utils import Database, Migrations

MIGRATION_SET = "botctl"

# 'botc' in ASCII. Written into the SQLite header so a botctl journal is recognisable even
# before its tables are inspected, and another application's file is never mistaken for one.
APPLICATION_ID = 0x626F7463

# Where each record type lives. Column names are the record's field names, in field order,
# so msgspec can build a record straight from a row.
TABLES: dict[type[Record], str] = {
    Run: "runs",
    Order: "orders",
    Fill: "fills",
    Position: "positions",
    NavSnapshot: "nav",
    Event: "events",
    Control: "control",
    Signal: "signals",
}
RECORD_TYPES: dict[str, type[Record]] = {table: cls for cls, table in TABLES.items()}

# Timestamps are ISO-8601 UTC TEXT with a fixed width (see codec), so text order is time order.
# Every table but control has `id INTEGER PRIMARY KEY`: it aliases the rowid, so "rows after
# id N" and "newest N rows" walk the table's own b-tree and need no extra index.
_INITIAL = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        plan_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        status TEXT NOT NULL,
        pid INTEGER,
        ended_at TEXT,
        heartbeat_at TEXT,
        period_start TEXT,
        period_end TEXT,
        note TEXT NOT NULL
    )
    """,
    # An order row is committed before the broker is called; the UNIQUE client_order_id is
    # what makes a retried send after a crash detectable instead of a second order.
    """
    CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        client_order_id TEXT NOT NULL UNIQUE,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        account TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        qty REAL NOT NULL,
        status TEXT NOT NULL,
        ts_init TEXT NOT NULL,
        ts_event TEXT NOT NULL,
        order_type TEXT NOT NULL,
        reason TEXT NOT NULL,
        ref_price REAL,
        filled_qty REAL NOT NULL,
        avg_fill_price REAL,
        broker_order_id TEXT,
        reject_reason TEXT
    )
    """,
    # fill_id is UNIQUE so a fill reported twice (stream + poll) cannot be counted twice.
    """
    CREATE TABLE fills (
        id INTEGER PRIMARY KEY,
        fill_id TEXT NOT NULL UNIQUE,
        client_order_id TEXT NOT NULL REFERENCES orders(client_order_id),
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        account TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        qty REAL NOT NULL,
        price REAL NOT NULL,
        commission REAL NOT NULL,
        ts_event TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE positions (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        account TEXT NOT NULL,
        ts_event TEXT NOT NULL,
        symbol TEXT NOT NULL,
        qty REAL NOT NULL,
        avg_price REAL NOT NULL,
        price REAL NOT NULL,
        value REAL NOT NULL
    )
    """,
    """
    CREATE TABLE nav (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        account TEXT NOT NULL,
        ts_event TEXT NOT NULL,
        nav REAL NOT NULL,
        cash REAL NOT NULL,
        gross_exposure REAL NOT NULL,
        leverage REAL NOT NULL
    )
    """,
    # No foreign key on run_id: events are the log of last resort (startup failures happen
    # before a run row exists) and must never be refused.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ts_event TEXT NOT NULL,
        subsystem TEXT NOT NULL,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        run_id TEXT,
        account TEXT,
        symbol TEXT,
        message TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    )
    """,
    """
    CREATE TABLE control (
        account TEXT PRIMARY KEY,
        halted INTEGER NOT NULL,
        reason TEXT NOT NULL,
        since TEXT NOT NULL,
        who TEXT NOT NULL,
        flatten INTEGER NOT NULL,
        acked_at TEXT
    )
    """,
    # Secondary indexes implicitly end with the rowid, so (account, status) also serves
    # "account's open orders, oldest first" without a sort.
    "CREATE INDEX orders_account_status ON orders (account, status)",
    "CREATE INDEX orders_account_id ON orders (account, id)",
    "CREATE INDEX orders_status ON orders (status)",
    "CREATE INDEX orders_run_id ON orders (run_id)",
    "CREATE INDEX fills_client_order_id ON fills (client_order_id)",
    "CREATE INDEX fills_account_id ON fills (account, id)",
    "CREATE INDEX fills_run_id ON fills (run_id)",
    # One row per symbol per snapshot; also the "snapshot at ts" index.
    "CREATE UNIQUE INDEX positions_snapshot ON positions (account, run_id, ts_event, symbol)",
    "CREATE INDEX positions_account_id ON positions (account, id)",
    "CREATE INDEX nav_account_id ON nav (account, id)",
    "CREATE INDEX nav_account_run_id ON nav (account, run_id, id)",
    "CREATE INDEX events_account_id ON events (account, id)",
    "CREATE INDEX events_account_severity_id ON events (account, severity, id)",
    "CREATE INDEX events_severity_id ON events (severity, id)",
    "CREATE INDEX events_run_id ON events (run_id)",
]


def m001_initial(db: Database) -> None:
    # Statement by statement: executescript() would COMMIT and break the migration's atomicity.
    for sql in _INITIAL:
        db.execute(sql)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def m002_guard_state(db: Database) -> None:
    # The risk guard's memory (high-water mark, counters), one JSON document per account and
    # scope ('live' for paper/live, the run id for a replay), so a restart resets nothing.
    db.execute(
        """
        CREATE TABLE guard_state (
            scope TEXT NOT NULL,
            account TEXT NOT NULL,
            state TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (scope, account)
        )
        """
    )


def m005_fill_as_traded_price(db: Database) -> None:
    # Fill.price is total-return adjusted in backtests and replays (XLK "@ 37.05" when it
    # traded near $80): what traded is recorded beside it, for people to read. Old rows: NULL.
    db.execute("ALTER TABLE fills ADD COLUMN as_traded_price REAL")


def m006_signals(db: Database) -> None:
    # External signals (botctl.feeds), journaled before any decision may use them. The sender's
    # id is unique per source, so a signal sent twice (a retried webhook, a re-read file) is
    # recorded once; `id` is the row id, for tail. Reads are by time range, source and kind.
    db.execute(
        """
        CREATE TABLE signals (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            signal_id TEXT NOT NULL,
            ts_event TEXT NOT NULL,
            ts_received TEXT NOT NULL,
            symbol TEXT NOT NULL,
            kind TEXT NOT NULL,
            score REAL NOT NULL,
            direction TEXT,
            expires_at TEXT,
            payload_hash TEXT NOT NULL,
            UNIQUE (source, signal_id)
        )
        """
    )
    db.execute("CREATE INDEX signals_ts_event ON signals (ts_event)")
    db.execute("CREATE INDEX signals_source_id ON signals (source, id)")


def m008_research_trials(db: Database) -> None:
    # The trials of a sweep or walk-forward run (botctl.research): one row per parameter set
    # (and window), written as each trial finishes, so a killed sweep resumes where it was.
    # params, metrics and stats are JSON documents; trial_key is params as canonical JSON.
    db.execute(
        """
        CREATE TABLE research_trials (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            window TEXT NOT NULL,
            trial_key TEXT NOT NULL,
            params TEXT NOT NULL,
            status TEXT NOT NULL,
            metrics TEXT,
            stats TEXT,
            reason TEXT,
            recorded_at TEXT NOT NULL,
            UNIQUE (run_id, window, trial_key)
        )
        """
    )


def m007_position_state(db: Database) -> None:
    # A signal book's per-position state (engine.positions.ModelBook as JSON: entries, highest
    # closes, ladder stages, pending sales, cooldowns), one document per scope ('live' for
    # paper/live, the run id for a replay), account and model, so a restart continues exactly
    # where it stopped. Registered after m008 (released first); names, not order, identify it.
    db.execute(
        """
        CREATE TABLE position_state (
            scope TEXT NOT NULL,
            account TEXT NOT NULL,
            model TEXT NOT NULL,
            state TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (scope, account, model)
        )
        """
    )


# The released migrations, in order: (name, function). Append only.
STEPS: tuple[tuple[str, Callable[[Database], None]], ...] = (
    ("m001_initial", m001_initial),
    ("m002_guard_state", m002_guard_state),
    ("m005_fill_as_traded_price", m005_fill_as_traded_price),
    ("m006_signals", m006_signals),
    ("m007_position_state", m007_position_state),
    ("m008_research_trials", m008_research_trials),
)
# Their names, known without importing sqlite_utils.
MIGRATION_NAMES: tuple[str, ...] = tuple(name for name, _ in STEPS)


def load_sqlite_utils() -> None:
    """Import sqlite_utils, keeping it from importing pandas when nothing has yet.

    sqlite_utils only uses pandas to accept DataFrame values, which botctl never writes; its
    import is most of the ~0.4 s that creating a journal took. A None in sys.modules makes
    `import pandas` raise ImportError (sqlite_utils then goes on without it); the entry is
    removed again at once, so alpaca-py, which needs pandas, still imports it later."""
    if "sqlite_utils" in sys.modules or "pandas" in sys.modules:
        import sqlite_utils  # noqa: F401  (already imported, or pandas is here anyway)
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        if "pandas" in sys.modules and sys.modules["pandas"] is None:
            del sys.modules["pandas"]


def build_migrations(*extra: tuple[str, Callable[[Database], None]]) -> Migrations:
    """A fresh migration set; `extra` (name, fn) pairs are appended (tests use it to fake an
    upgrade)."""
    load_sqlite_utils()
    from sqlite_utils import Migrations

    migrations = Migrations(MIGRATION_SET)
    for name, fn in (*STEPS, *extra):
        migrations(name=name)(fn)
    return migrations


@functools.cache
def migrations() -> Migrations:
    """botctl's migration set (built, and sqlite_utils imported, on first call only)."""
    return build_migrations()


def __getattr__(name: str) -> Any:
    # `MIGRATIONS` stays importable for callers that want the set, but building it is lazy.
    if name == "MIGRATIONS":
        return migrations()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def known_names(migrations: Migrations | None = None) -> list[str]:
    """Every migration name in `migrations` (default: botctl's set), in order.

    botctl's own names come from `MIGRATION_NAMES` without touching sqlite_utils. Migrations
    has no public listing, but everything is pending on an empty database.
    """
    if migrations is None:
        return list(MIGRATION_NAMES)
    load_sqlite_utils()
    from sqlite_utils import Database

    return [m.name for m in migrations.pending(Database(memory=True, execute_plugins=False))]


def index_hint(table: str, columns: set[str]) -> str | None:
    """The index a filtered read must use, where SQLite's planner would guess wrong.

    Without statistics the planner prefers an (account, id) index that yields rows already in
    id order, and then walks every order of the account to find its few open ones. A status
    or severity filter is the selective one in practice (open orders, warnings), so those
    searches are pinned to the index that contains it; sorting the few matches is cheap.
    Likewise one positions snapshot is a handful of rows found by its timestamp.
    """
    if table == "orders" and "status" in columns:
        if "account" in columns:
            return "orders_account_status"
        return None if "run_id" in columns else "orders_status"
    if table == "positions" and "ts_event" in columns:
        return "positions_snapshot"
    if table == "events" and "severity" in columns:
        return "events_account_severity_id" if "account" in columns else "events_severity_id"
    return None
