"""The journal: botctl's one SQLite file, written by the runner and read by status/tail/tui.

Outside `transaction()` every write commits on its own, which is what "the order row is
committed before the broker is called" needs. Reads return msgspec records, never rows.

Store holds a plain sqlite3 connection (`store.conn`): reading (status, tail) must not pay for
importing sqlite_utils, which pulls in pandas. `store.db`, a sqlite_utils Database on the same
connection, is created on first use for callers that want its helpers.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from botctl.errors import StoreError, UsageError
from botctl.records import (
    OPEN_ORDER_STATUSES,
    SEVERITIES,
    Control,
    Event,
    Fill,
    NavSnapshot,
    Order,
    Position,
    Record,
    Run,
    Signal,
)
from botctl.store.codec import BY_TABLE, CODECS, Codec, codec_for, format_ts
from botctl.store.opening import describe, open_database
from botctl.store.schema import MIGRATION_NAMES, MIGRATION_SET, index_hint

if TYPE_CHECKING:
    from sqlite_utils import Database, Migrations

    from botctl.store.writer_lock import Turnstile, WriterLock

# The natural key named in "already in the journal" messages.
_KEYS = {"runs": "run_id", "orders": "client_order_id", "fills": "fill_id", "control": "account"}
_savepoints = itertools.count()
# The update half of an order upsert applies only while the journal's row is still open.
_ONLY_OPEN_ORDERS = f" WHERE orders.status IN ({', '.join(repr(s) for s in OPEN_ORDER_STATUSES)})"


# Runs a bot process performs, the ones `status`, `kill` and the health check look for.
TRADING_KINDS = ("paper", "live", "replay")
# Runs whose marks are a paper or live account's own state (a `manual` run is a kill with no
# bot running, acting on that state). Backtests and replays never feed it.
ACCOUNT_STATE_KINDS = ("paper", "live", "manual")
BACKTESTS_SUFFIX = "-backtests"


def backtest_journal(path: str | os.PathLike[str]) -> str:
    """Where backtests beside the journal at `path` are journaled: `<stem>-backtests<suffix>`
    in the same folder (`botctl.db` -> `botctl-backtests.db`), so a backtest never writes
    into, locks or feeds the state of the trading journal. A path that already names a
    backtests journal is kept."""
    p = os.fspath(path)
    folder, name = os.path.split(p)
    stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    if stem.endswith(BACKTESTS_SUFFIX):
        return p
    return os.path.join(folder, f"{stem}{BACKTESTS_SUFFIX}{dot}{suffix}")


class DuplicateRecord(StoreError):
    """A record with the same natural key (client_order_id, fill_id, run_id...) exists."""


def severities_at_least(severity: str) -> tuple[str, ...]:
    level = severity.upper()
    if level not in SEVERITIES:
        raise UsageError(f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}")
    return SEVERITIES[SEVERITIES.index(level) :]


class Store:
    def __init__(self, conn: sqlite3.Connection | Database, path: str, *, readonly: bool) -> None:
        self._db: Database | None = None
        if not isinstance(conn, sqlite3.Connection):  # a sqlite_utils Database
            self._db, conn = conn, conn.conn
        self.conn: sqlite3.Connection = conn
        self.path = path
        self.readonly = readonly
        self._conn = conn
        # Told of every record written, once it is committed (botctl.notify's Notifier.heard).
        self.listener: Callable[[Record], None] | None = None
        self._unheard: list[Record] = []  # written inside the open transaction, told at COMMIT
        self.writer_lock: WriterLock | None = None  # held while this process trades on the journal
        self._turnstile: Turnstile | None = None  # priority for kill's halt (created on first write)

    @property
    def db(self) -> Database:
        """A sqlite_utils Database on this store's connection, for ad-hoc use. Imports
        sqlite_utils on first access; Store itself never needs it."""
        if self._db is None:
            from botctl.store.schema import load_sqlite_utils

            load_sqlite_utils()
            from sqlite_utils import Database

            self._db = Database(self.conn, execute_plugins=False)
        return self._db

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        readonly: bool = False,
        durable: bool = True,
        migrations: Migrations | None = None,
        trading: bool = False,
    ) -> Store:
        """Open (and create/migrate unless readonly) the journal at `path`.

        durable=False relaxes fsync to WAL's NORMAL (safe against crashes, not power loss):
        for backtests and replays, which can be made again, never for paper or live trading.
        `migrations` exists so tests can simulate an upgrade. trading=True takes the journal's
        writer lock first (held until close): for a process that trades, refused with
        JournalBusy while another holds it.
        """
        lock = None
        if trading:
            from botctl.store.writer_lock import WriterLock

            lock = WriterLock(path)
            lock.acquire()
        try:
            conn = open_database(
                path, create=create, readonly=readonly, durable=durable, migrations=migrations
            )
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        store = cls(conn, str(path), readonly=readonly)
        store.writer_lock = lock
        if not readonly:
            store._import_unrecorded_end()
        return store

    # --- a run's end, even when the journal itself is what failed -----------------------------

    def _end_note_path(self) -> str:
        return self.path + ".run-end.json"

    def end_run(self, run: Run, status: str, message: str, at: datetime) -> None:
        """Record how a run ended: its row and a `run.<status>` event, together. When the
        journal cannot take them (locked, full, read-only), they are written to a small JSON
        file beside it instead: `status` reads that file, and the next process that opens the
        journal for writing moves it in. Never raises: this runs while failing already."""
        ended = msgspec.structs.replace(run, status=status, ended_at=at, heartbeat_at=at, note=message[:500])
        event = Event(ts_event=at, subsystem="runtime", type=f"run.{status}", severity="ERROR" if status == "failed" else "INFO",
                      run_id=run.run_id, message=message[:500])
        try:
            with self.transaction():
                self.upsert_run(ended)
                self.insert(event)
            return
        except StoreError:
            pass
        note = {"run": msgspec.to_builtins(ended), "event": msgspec.to_builtins(event)}
        try:
            tmp = f"{self._end_note_path()}.{os.getpid()}.tmp"  # per process: never a shared temp file
            with open(tmp, "wb") as f:
                f.write(msgspec.json.encode(note))
            os.replace(tmp, self._end_note_path())
        except OSError:
            pass  # the disk refuses even this: stderr has said what happened

    def _read_end_note(self) -> tuple[Run, Event] | None:
        try:
            with open(self._end_note_path(), "rb") as f:
                note = msgspec.json.decode(f.read())
            return msgspec.convert(note["run"], Run), msgspec.convert(note["event"], Event)
        except (OSError, ValueError, KeyError, TypeError, msgspec.ValidationError):
            return None

    def unrecorded_end(self) -> Run | None:
        """The end of a run that could not be written into the journal, if one is waiting."""
        note = self._read_end_note()
        return note[0] if note else None

    def _import_unrecorded_end(self) -> None:
        note = self._read_end_note()
        if note is None:
            return
        run, event = note
        try:
            with self.transaction():
                current = self.get_run(run.run_id)
                if current is not None and current.status == "running":
                    self.upsert_run(run)
                    self.insert(event)
            os.remove(self._end_note_path())
        except (OSError, StoreError):
            pass  # left for status to read; tried again on the next open

    def close(self) -> None:
        self._conn.close()
        if self._turnstile is not None:
            self._turnstile.close()
        if self.writer_lock is not None:
            self.writer_lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def applied_migrations(self) -> list[str]:
        """Names of botctl's migrations applied to this file, in the order applied."""
        with self._guard():
            has_table = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'"
            ).fetchone()
            if not has_table:
                return []
            rows = self._conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid",
                (MIGRATION_SET,),
            ).fetchall()
        return [r[0] for r in rows]

    def is_current(self, migrations: Migrations | None = None) -> bool:
        """No migration of `migrations` (default: botctl's set) is pending."""
        if migrations is None:
            return set(MIGRATION_NAMES) <= set(self.applied_migrations())
        return not migrations.pending(self.db)

    # --- transactions and errors ---------------------------------------------------------

    @contextmanager
    def _guard(self, record: Record | None = None) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as e:
            raise self._integrity(e, record) from e
        except sqlite3.Error as e:
            raise describe(e, self.path) from e

    def _integrity(self, e: sqlite3.IntegrityError, record: Record | None) -> StoreError:
        msg = str(e)
        if "UNIQUE" in msg or "PRIMARY KEY" in msg:
            if record is not None:
                table = CODECS[type(record)].table
                key = _KEYS.get(table)
                if key and key in msg:
                    value = getattr(record, key)
                    return DuplicateRecord(
                        f"{type(record).__name__} {key}={value!r} is already in the journal"
                    )
            return DuplicateRecord(f"duplicate record in {self.path} ({msg})")
        if "FOREIGN KEY" in msg:
            what = f"{type(record).__name__} " if record is not None else ""
            return StoreError(f"{what}refers to a run or order that is not in the journal ({msg})")
        return StoreError(f"invalid record for {self.path} ({msg})")

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only")

    def _turn(self) -> Turnstile:
        if self._turnstile is None:
            from botctl.store.writer_lock import Turnstile

            self._turnstile = Turnstile(self.path)
        return self._turnstile

    @contextmanager
    def priority(self) -> Iterator[Store]:
        """Writes inside go before every other process's next write transaction (for the
        emergency stop: keep what is inside short)."""
        with self._turn():
            yield self

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside commit together or not at all; nests via savepoints."""
        self._writable()
        conn = self._conn
        if conn.in_transaction:
            name = f"botctl_{next(_savepoints)}"
            conn.execute(f"SAVEPOINT {name}")
            heard = len(self._unheard)
            try:
                yield self
            except BaseException:
                del self._unheard[heard:]
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
                raise
            conn.execute(f"RELEASE {name}")
            return
        self._turn().pass_through()  # a kill waiting for its halt goes first
        # IMMEDIATE: take the write lock up front; a deferred transaction that upgrades from
        # read to write gets SQLITE_BUSY without honouring busy_timeout in WAL mode.
        with self._guard():
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
            with self._guard():
                conn.execute("COMMIT")
        except BaseException:
            self._unheard.clear()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._tell()

    def _heard(self, record: Record) -> None:
        if self.listener is not None:
            self._unheard.append(record)
            if not self._conn.in_transaction:
                self._tell()

    def _tell(self) -> None:
        heard, self._unheard = self._unheard, []
        if self.listener is not None:
            for record in heard:
                self.listener(record)

    # --- writing -------------------------------------------------------------------------

    def _write(self, codec: Codec, record: Record, upsert_key: str | None = None) -> int:
        self._writable()
        sql = codec.upsert_sql(upsert_key) if upsert_key else codec.insert_sql
        cur = self._execute(sql, codec.encode(record), record)
        self._heard(record)
        return cur.lastrowid or 0

    def _execute(self, sql: str, row: Any, record: Record) -> sqlite3.Cursor:
        """One write statement; outside a transaction it is its own, so it waits its turn
        behind a kill's halt like every transaction does."""
        if not self._conn.in_transaction:
            self._turn().pass_through()
        with self._guard(record):
            return self._conn.execute(sql, row)

    def insert(self, record: Record) -> int:
        """Insert one record; returns its row id. A duplicate natural key is DuplicateRecord."""
        return self._write(codec_for(record), record)

    def insert_many(self, records: Iterable[Record]) -> int:
        """Insert records (any mix of types, streamed) in one transaction; returns the count."""
        count = 0
        with self.transaction():
            if self.listener is not None:
                records = list(records)
                self._unheard.extend(records)  # told when this transaction commits
            for cls, group in itertools.groupby(records, key=type):
                codec = CODECS.get(cls) or codec_for(next(group))
                with self._guard():
                    cur = self._conn.executemany(codec.insert_sql, codec.rows(group))
                count += cur.rowcount
        return count

    def upsert_order(self, order: Order) -> bool:
        """Insert, or update the row with the same client_order_id (keeping its id). An order
        already final in the journal (filled, canceled, rejected, expired) is never changed:
        nothing learnt later, least of all by a process working from stale state, can turn a
        filled order back into a pending one. False when the row was left as it was."""
        self._writable()
        sql = CODECS[Order].upsert_sql("client_order_id") + _ONLY_OPEN_ORDERS
        cur = self._execute(sql, CODECS[Order].encode(order), order)
        if cur.rowcount > 0:  # an order left as it was is no news
            self._heard(order)
        return cur.rowcount > 0

    def upsert_run(self, run: Run) -> None:
        self._write(CODECS[Run], run, "run_id")

    def set_control(self, control: Control) -> None:
        self._write(CODECS[Control], control, "account")

    def heartbeat(self, run_id: str, ts: datetime) -> None:
        self._writable()
        with self._guard():
            cur = self._conn.execute(
                "UPDATE runs SET heartbeat_at = ? WHERE run_id = ?",
                (format_ts(ts, "heartbeat"), run_id),
            )
        if cur.rowcount == 0:
            raise StoreError(f"no run {run_id!r} in {self.path}")

    def put_guard_state(self, scope: str, account: str, state: bytes, ts: datetime) -> None:
        """Store the risk guard's state (JSON from the engine) for `account` in `scope`."""
        self._writable()
        with self._guard():
            self._conn.execute(
                "INSERT INTO guard_state (scope, account, state, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope, account) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (scope, account, state.decode(), format_ts(ts, "updated_at")),
            )

    # --- external signals (botctl.feeds) ---------------------------------------------------

    def append_signals(self, signals: Iterable[Signal]) -> list[bool]:
        """Journal signals in one transaction; per signal True when it was recorded, False when
        its (source, signal_id) was already in the journal (a duplicate is recorded once, and
        the first one recorded stands). Heard by the listener only when new."""
        self._writable()
        codec = CODECS[Signal]
        sql = codec.insert_sql + " ON CONFLICT (source, signal_id) DO NOTHING"
        answers: list[bool] = []
        with self.transaction():
            for signal in signals:
                cur = self._execute(sql, codec.encode(signal), signal)
                answers.append(cur.rowcount > 0)
                if cur.rowcount > 0:
                    self._heard(signal)
        return answers

    def append_signal(self, signal: Signal) -> bool:
        """Journal one signal; False when it is a duplicate (see append_signals)."""
        return self.append_signals([signal])[0]

    def signals(
        self,
        source: str | Iterable[str] | None = None,
        kind: str | Iterable[str] | None = None,
        symbol: str | Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Signal]:
        """Journaled signals with since <= ts_event <= until, in ts_event order (then journal
        order); `limit` keeps the newest `limit` of them."""
        codec = self._codec("signals")
        clauses, params = self._where(codec, {"source": source, "kind": kind, "symbol": symbol})
        for op, value in ((">=", since), ("<=", until)):
            if value is not None:
                clauses.append(f"ts_event {op} ?")
                params.append(format_ts(value, "ts_event"))
        if limit is None:
            return [rec for _, rec in self._query(codec, clauses, params, "ORDER BY ts_event, id")]
        found = [rec for _, rec in self._query(codec, clauses, [*params, limit],
                                               "ORDER BY ts_event DESC, id DESC LIMIT ?")]
        found.reverse()
        return found

    def signal_sources(self, since: datetime) -> dict[str, tuple[int, datetime | None, int]]:
        """Per source: (signals received since `since`, the newest ts_received, all signals)."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT source, SUM(ts_received >= ?), MAX(ts_received), COUNT(*) FROM signals GROUP BY source",
                (format_ts(since, "since"),),
            ).fetchall()
        return {r[0]: (int(r[1] or 0), datetime.fromisoformat(r[2]) if r[2] else None, int(r[3])) for r in rows}

    def put_position_states(self, scope: str, account: str, states: Mapping[str, bytes], ts: datetime) -> None:
        """Store signal books' position state (JSON from engine.positions, one document per
        model) for `account` in `scope`, all models together or none."""
        with self.transaction():
            for model, state in states.items():
                self._conn.execute(
                    "INSERT INTO position_state (scope, account, model, state, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (scope, account, model) DO UPDATE SET state = excluded.state, "
                    "updated_at = excluded.updated_at",
                    (scope, account, model, state.decode(), format_ts(ts, "updated_at")),
                )

    def position_states(self, scope: str, account: str) -> dict[str, bytes]:
        """The position state of each signal-book model of `account` in `scope` (empty when
        none was stored, or the journal predates it)."""
        with self._guard():
            if not self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'position_state'").fetchone():
                return {}
            rows = self._conn.execute(
                "SELECT model, state FROM position_state WHERE scope = ? AND account = ? ORDER BY model", (scope, account)
            ).fetchall()
        return {model: state.encode() for model, state in rows}

    # --- reading -------------------------------------------------------------------------

    def guard_state(self, scope: str, account: str) -> bytes | None:
        with self._guard():
            row = self._conn.execute(
                "SELECT state FROM guard_state WHERE scope = ? AND account = ?", (scope, account)
            ).fetchone()
        return row[0].encode() if row else None

    def _codec(self, table: str, *, need_id: bool = True) -> Codec:
        codec = BY_TABLE.get(table)
        if codec is None or (need_id and table == "control"):
            raise ValueError(f"no id-ordered journal table {table!r}")
        return codec

    def _where(self, codec: Codec, filters: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for col, value in filters.items():
            if value is None:
                continue
            if col == "severity_at_least" and codec.table == "events":
                col, value = "severity", severities_at_least(value)
            if col not in codec.columns and col != "id":
                raise ValueError(f"table {codec.table} has no column {col!r}")
            if isinstance(value, datetime):
                value = format_ts(value, col)
            if isinstance(value, (str, int, float)):
                clauses.append(f"{col} = ?")
                params.append(value)
            else:
                values = list(value)
                clauses.append(f"{col} IN ({', '.join('?' * len(values))})" if values else "0")
                params.extend(values)
        return clauses, params

    # The (id, record) readers answer Any for the record: its type is the table's (Order for
    # "orders", NavSnapshot for "nav", ...), which the caller names with a string.
    def _query(
        self, codec: Codec, clauses: list[str], params: list[Any], tail: str
    ) -> list[tuple[int, Any]]:
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        key = "rowid" if codec.table == "control" else "id"
        hint = index_hint(codec.table, {c.split(" ", 1)[0] for c in clauses})
        source = f"{codec.table} INDEXED BY {hint}" if hint else codec.table
        with self._guard():
            cur = self._conn.cursor()
            cur.row_factory = sqlite3.Row
            rows = cur.execute(f"SELECT {key} AS _id, * FROM {source}{where} {tail}", params).fetchall()
        return [(row["_id"], codec.decode(row)) for row in rows]

    def rows_after(
        self, table: str, after_id: int, limit: int | None = 1000, **filters: Any
    ) -> list[tuple[int, Any]]:
        """(id, record) pairs with id > after_id, oldest first: one poll of `tail -f`."""
        codec = self._codec(table)
        clauses, params = self._where(codec, filters)
        clauses.insert(0, "id > ?")
        params.insert(0, after_id)
        return self._query(codec, clauses, params + [-1 if limit is None else limit],
                           "ORDER BY id LIMIT ?")

    def newest(self, table: str, n: int, **filters: Any) -> list[tuple[int, Any]]:
        """The newest `n` (id, record) pairs, oldest first (so tail can print then follow)."""
        codec = self._codec(table)
        clauses, params = self._where(codec, filters)
        pairs = self._query(codec, clauses, params + [n], "ORDER BY id DESC LIMIT ?")
        pairs.reverse()
        return pairs

    def _records(self, table: str, limit: int | None, **filters: Any) -> list[Any]:
        if limit is not None:
            return [rec for _, rec in self.newest(table, limit, **filters)]
        return [rec for _, rec in self.rows_after(table, 0, None, **filters)]

    def get_order(self, client_order_id: str) -> Order | None:
        found = self._records("orders", 1, client_order_id=client_order_id)
        return found[0] if found else None

    def orders(
        self,
        account: str | None = None,
        status: str | Iterable[str] | None = None,
        run_id: str | Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Order]:
        """Matching orders oldest first; `limit` keeps the newest `limit` of them."""
        return self._records("orders", limit, account=account, status=status, run_id=run_id)

    def orders_with_prefix(self, prefix: str) -> list[Order]:
        """Orders whose client id starts with `prefix` (one cycle's orders), oldest first; a
        range scan of the unique client-id index."""
        codec = self._codec("orders")
        return [rec for _, rec in self._query(codec, ["client_order_id >= ?", "client_order_id < ?"],
                                              [prefix, prefix + "\U0010ffff"], "ORDER BY id")]

    def has_traded(self, account: str, plan_id: str) -> bool:
        """Has a paper or live run of this plan placed an order for `account`?"""
        with self._guard():
            row = self._conn.execute(
                "SELECT 1 FROM orders o JOIN runs r ON r.run_id = o.run_id "
                "WHERE o.account = ? AND r.plan_id = ? AND r.kind IN ('paper', 'live') LIMIT 1",
                (account, plan_id),
            ).fetchone()
        return row is not None

    def open_orders(self, account: str | None = None) -> list[Order]:
        return self.orders(account, status=OPEN_ORDER_STATUSES)

    def fills(
        self,
        account: str | None = None,
        run_id: str | None = None,
        client_order_id: str | None = None,
        limit: int | None = None,
    ) -> list[Fill]:
        return self._records(
            "fills", limit, account=account, run_id=run_id, client_order_id=client_order_id
        )

    def run_ids(self, kinds: Iterable[str]) -> list[str]:
        """Ids of the runs of these kinds, oldest first."""
        kinds = list(kinds)
        with self._guard():
            rows = self._conn.execute(
                f"SELECT run_id FROM runs WHERE kind IN ({', '.join('?' * len(kinds))}) ORDER BY id", kinds
            ).fetchall()
        return [r[0] for r in rows]

    def _in_runs(self, run_id: str | None, kinds: Iterable[str] | None) -> str | list[str] | None:
        return run_id if kinds is None else self.run_ids(kinds)

    def latest_nav(
        self, account: str, run_id: str | None = None, kinds: Iterable[str] | None = None
    ) -> NavSnapshot | None:
        """The newest mark of `account` (in `run_id`, or in runs of `kinds`)."""
        found = self._records("nav", 1, account=account, run_id=self._in_runs(run_id, kinds))
        return found[0] if found else None

    def account_state(self, account: str) -> tuple[NavSnapshot | None, list[Position]]:
        """A paper or live account's own latest mark and holdings, from its paper/live runs
        (and kills with no bot running) only: never a backtest's or a replay's."""
        runs = self.run_ids(ACCOUNT_STATE_KINDS)
        latest = self._records("nav", 1, account=account, run_id=runs)
        if not latest:
            return None, []
        return latest[0], self.positions_at_latest(account, latest[0].run_id)

    def fills_after_mark(self, account: str, mark: NavSnapshot | None) -> list[Fill]:
        """The fills of a paper or live account (its own runs only, as account_state) that its
        mark `mark` does not hold: stamped after it (a mark at t holds every fill up to t), or
        all of them when there is no mark yet. Oldest first. A process killed between a fill
        and its next mark leaves these behind."""
        codec = self._codec("fills")
        clauses, params = self._where(codec, {"account": account, "run_id": self.run_ids(ACCOUNT_STATE_KINDS)})
        if mark is not None:
            clauses.append("ts_event > ?")
            params.append(format_ts(mark.ts_event, "ts_event"))
        return [rec for _, rec in self._query(codec, clauses, params, "ORDER BY ts_event, id")]

    def nav_series(self, account: str, run_id: str) -> list[NavSnapshot]:
        return self._records("nav", None, account=account, run_id=run_id)

    def positions_at_latest(self, account: str, run_id: str | None = None) -> list[Position]:
        """Holdings at the latest mark. The mark is the latest NavSnapshot, so a flat book reads
        as no positions rather than the last non-empty snapshot; write a mark's nav and
        positions in one transaction()."""
        anchor = self.newest("nav", 1, account=account, run_id=run_id) or self.newest(
            "positions", 1, account=account, run_id=run_id
        )
        if not anchor:
            return []
        mark = anchor[0][1]
        assert isinstance(mark, (NavSnapshot, Position))
        return self._records(
            "positions", None, account=account, run_id=mark.run_id, ts_event=mark.ts_event
        )

    def events(
        self,
        account: str | None = None,
        severity_at_least: str | None = None,
        limit: int | None = None,
        run_id: str | None = None,
    ) -> list[Event]:
        return self._records(
            "events", limit, account=account, severity_at_least=severity_at_least, run_id=run_id
        )

    def controls(self) -> dict[str, Control]:
        codec = self._codec("control", need_id=False)
        return {rec.account: rec for _, rec in self._query(codec, [], [], "ORDER BY account")}

    def get_run(self, run_id: str) -> Run | None:
        found = self._records("runs", 1, run_id=run_id)
        return found[0] if found else None

    def latest_run(self, kinds: Iterable[str] | None = None) -> Run | None:
        """The newest run (of `kinds`, e.g. TRADING_KINDS for the bot's)."""
        found = self._records("runs", 1, kind=None if kinds is None else list(kinds))
        return found[0] if found else None

    def runs(self) -> list[Run]:
        return self._records("runs", None)

    # --- research trials (botctl.research) ---------------------------------------------------

    def put_trial(self, run_id: str, window: str, trial_key: str, params: str, status: str, *,
                  metrics: str | None, stats: str | None, reason: str | None, ts: datetime) -> None:
        """Record one finished trial of a sweep or walk-forward run (JSON documents as text).
        A trial recorded again (a resumed run) replaces its row."""
        self._writable()
        with self._guard():
            self._conn.execute(
                "INSERT INTO research_trials (run_id, window, trial_key, params, status, metrics, stats, reason, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, window, trial_key) DO UPDATE "
                "SET params = excluded.params, status = excluded.status, metrics = excluded.metrics, "
                "stats = excluded.stats, reason = excluded.reason, recorded_at = excluded.recorded_at",
                (run_id, window, trial_key, params, status, metrics, stats, reason, format_ts(ts, "recorded_at")),
            )

    def trials(self, run_id: str) -> list[dict[str, Any]]:
        """The recorded trials of a run, in the order they finished (JSON fields as text)."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT window, trial_key, params, status, metrics, stats, reason, recorded_at FROM research_trials "
                "WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        names = ("window", "trial_key", "params", "status", "metrics", "stats", "reason", "recorded_at")
        return [dict(zip(names, row)) for row in rows]

    def trial_counts(self, run_ids: list[str]) -> dict[str, int]:
        """{run_id: recorded trials} for those that have any (an older journal has none)."""
        if not run_ids:
            return {}
        marks = ", ".join("?" for _ in run_ids)
        try:
            with self._guard():
                rows = self._conn.execute(
                    f"SELECT run_id, COUNT(*) FROM research_trials WHERE run_id IN ({marks}) GROUP BY run_id", run_ids
                ).fetchall()
        except StoreError:
            return {}  # a journal from before m008_research_trials
        return dict(rows)


__all__ = ["ACCOUNT_STATE_KINDS", "TRADING_KINDS", "DuplicateRecord", "Store", "backtest_journal",
           "severities_at_least"]
