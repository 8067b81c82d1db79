"""Opening a journal file: refuse anything that is not (or not yet) a botctl database with a
one-line reason, then bring the schema up to date.

The file is inspected with read-only queries before anything is written, so a foreign SQLite
file is never converted to WAL or given botctl tables.

Everything here is plain sqlite3: sqlite_utils (slow to import, it pulls in pandas) is only
imported by a writable open that creates the file or has migrations to apply.
"""

from __future__ import annotations

import gc
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from botctl.errors import StoreError
from botctl.store.schema import APPLICATION_ID, MIGRATION_SET, known_names

if TYPE_CHECKING:
    from sqlite_utils import Migrations

BUSY_TIMEOUT_S = 5.0
_NO_DATABASE = "no database at {path}; run `botctl run` or `botctl backtest` first"


@dataclass
class _State:
    application_id: int
    tables: list[str]
    applied: list[str]
    other_sets: list[str] = field(default_factory=list)


def open_database(
    path: str | os.PathLike[str],
    *,
    create: bool,
    readonly: bool,
    durable: bool,
    migrations: Migrations | None = None,
) -> sqlite3.Connection:
    """A connection to the journal at `path`, checked and (when writable) migrated.

    `migrations=None` means botctl's own set, which is only built if something is pending.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise StoreError(f"{path} is a directory, not a botctl database")
    exists = p.exists()
    if not exists and (readonly or not create):
        raise StoreError(_NO_DATABASE.format(path=path))
    if not readonly:
        _check_writable(p, exists, path)
        if create and (not exists or p.stat().st_size == 0):
            _preload_for_creation(migrations)
    conn = _connect(p, readonly, path)
    if readonly:
        conn = _readable(conn, p, path)
    try:
        # What sqlite_utils.Database(conn) used to set on every journal connection.
        conn.execute("PRAGMA recursive_triggers = ON")
        state = _inspect(conn, path)
        known = known_names(migrations)
        _refuse_foreign_or_newer(state, known, path)
        if readonly:
            if not state.applied:
                raise StoreError(_NO_DATABASE.format(path=path))
            if set(known) - set(state.applied):
                raise StoreError(
                    f"{path} has an older botctl schema ({state.applied[-1]}); "
                    "run a writing command (`botctl run`) once to upgrade it"
                )
            conn.execute("PRAGMA query_only = ON")
        else:
            if not state.applied and not create:
                raise StoreError(_NO_DATABASE.format(path=path))
            _prepare_for_writing(conn, migrations, state, known, durable, path)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    except sqlite3.Error as e:
        conn.close()
        raise describe(e, path) from e
    except BaseException:
        conn.close()
        raise


def _check_writable(p: Path, exists: bool, shown: object) -> None:
    parent = p.parent
    if not exists:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {parent}: {e.strerror}") from e
    elif not os.access(p, os.W_OK):
        raise StoreError(f"{shown} is read-only; botctl needs to write to it")
    # WAL keeps -wal and -shm files next to the database, so the directory must be writable too.
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"directory {parent} is read-only; botctl needs to write {p.name} there")


def _connect(p: Path, readonly: bool, shown: object, *, immutable: bool = False) -> sqlite3.Connection:
    # isolation_level=None: no implicit BEGIN, so a read never holds a transaction open and
    # Store decides exactly where transactions start (BEGIN IMMEDIATE).
    # check_same_thread=False: the TUI reads from worker threads; Store is still used by one
    # thread at a time.
    try:
        if readonly:
            return sqlite3.connect(
                p.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro"),
                uri=True,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
        return sqlite3.connect(
            str(p), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as e:
        raise describe(e, shown) from e


# SQLite's answers when a read-only open of a WAL journal cannot create the -shm index beside
# it, because the folder is not writable by this user.
_CANNOT_INDEX = {"SQLITE_READONLY_DIRECTORY", "SQLITE_READONLY_CANTINIT", "SQLITE_CANTOPEN"}


def _readable(conn: sqlite3.Connection, p: Path, shown: object) -> sqlite3.Connection:
    """`conn`, or for a journal in a folder this user cannot write, a connection that reads it
    anyway. Reading needs no write access: with no pending -wal file the database file holds
    everything, and SQLite's `immutable` mode reads it without the -shm index. With pending
    WAL content that index is needed, and the error says so."""
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.Error as e:
        if getattr(e, "sqlite_errorname", "") not in _CANNOT_INDEX:
            return conn  # _inspect reports it
        conn.close()
    wal = Path(f"{p}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"cannot read {shown}: its folder is not writable by this user and the newest writes "
            f"are still in {wal.name}, which SQLite can only read with a {p.name}-shm file it "
            "must create there; run as the bot's user or make the folder writable"
        )
    return _connect(p, True, shown, immutable=True)


def _inspect(conn: sqlite3.Connection, shown: object) -> _State:
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        ]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{shown} is not a botctl database ({e})") from e
    state = _State(app_id, [t for t in tables if t != "_sqlite_migrations"], [])
    if "_sqlite_migrations" in tables:
        try:
            rows = conn.execute(
                "SELECT migration_set, name FROM _sqlite_migrations ORDER BY rowid"
            ).fetchall()
        except sqlite3.OperationalError as e:
            raise StoreError(f"{shown} is not a botctl database (foreign schema: {e})") from e
        state.applied = [name for s, name in rows if s == MIGRATION_SET]
        state.other_sets = sorted({s for s, _ in rows if s != MIGRATION_SET})
    return state


def _refuse_foreign_or_newer(state: _State, known: list[str], shown: object) -> None:
    if state.application_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{shown} is not a botctl database "
            f"(foreign schema: application_id {state.application_id:#x})"
        )
    if not state.applied:
        if state.application_id == APPLICATION_ID and state.tables:
            raise StoreError(f"{shown} is a damaged botctl database (no schema record)")
        if state.tables or state.other_sets:
            names = ", ".join((state.tables + state.other_sets)[:5])
            raise StoreError(f"{shown} is not a botctl database (foreign schema: {names})")
        return
    unknown = [name for name in state.applied if name not in known]
    if unknown:
        raise StoreError(
            f"{shown} was written by a newer botctl (schema {unknown[-1]}); upgrade botctl"
        )


def _prepare_for_writing(
    conn: sqlite3.Connection,
    migrations: Migrations | None,
    state: _State,
    known: list[str],
    durable: bool,
    shown: object,
) -> None:
    # journal_mode cannot change inside a transaction, and is persistent in the file.
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: an order row must survive power loss once committed, because the broker is called
    # right after. Backtests may trade that for speed with durable=False.
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    if not set(known) - set(state.applied):
        return  # current: no lock needed, so opening never waits for a busy writer
    # IMMEDIATE takes the write lock before re-checking, so two processes opening a new file at
    # once cannot both run the first migration.
    with _no_collection():
        conn.execute("BEGIN IMMEDIATE")
        try:
            state = _inspect(conn, shown)
            _refuse_foreign_or_newer(state, known, shown)
            if set(known) - set(state.applied):
                _apply(conn, migrations)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


@contextmanager
def _no_collection() -> Iterator[None]:
    """No garbage collection inside: the many objects a fresh sqlite_utils import makes soon
    trigger a full one, which must not hold the migration transaction (~20 ms, and more in a
    process that holds a backtest's results: a backtest opens its journal last)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _migration_set(migrations: Migrations | None) -> Migrations:
    """`migrations`, or botctl's own set (built, importing sqlite_utils, on first use)."""
    from botctl.store.schema import migrations as botctl_migrations

    return migrations or botctl_migrations()


def _preload_for_creation(migrations: Migrations | None) -> None:
    """Get the slow part of creating a journal done before connect() creates the file.

    A process waiting for the journal to appear may read it as soon as it exists, so the file
    should not sit there without tables while sqlite_utils (and pandas) import (~0.4 s); nor
    does a garbage collection run inside the migration transaction (_no_collection).
    """
    _migration_set(migrations)


def _apply(conn: sqlite3.Connection, migrations: Migrations | None) -> None:
    """Run the pending sqlite-utils migrations on `conn`."""
    from sqlite_utils import Database

    _migration_set(migrations).apply(Database(conn, execute_plugins=False))


def describe(e: sqlite3.Error, path: object) -> StoreError:
    """A one-line StoreError for a sqlite3 error on the journal at `path`."""
    msg = str(e)
    low = msg.lower()
    if "not a database" in low or "malformed" in low:
        return StoreError(f"{path} is not a botctl database ({msg})")
    if "locked" in low or "busy" in low:
        return StoreError(
            f"{path} is locked by another process (waited {BUSY_TIMEOUT_S:g}s): {msg}"
        )
    if "readonly" in low or "read-only" in low:
        return StoreError(f"{path} is read-only; botctl needs to write to it ({msg})")
    if "unable to open" in low:
        return StoreError(f"cannot open {path} ({msg})")
    return StoreError(f"database error on {path}: {msg}")
