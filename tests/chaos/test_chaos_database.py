"""Database faults while `botctl run --replay` writes the journal: a lock held by another
process, a read-only file, a full disk (a file-size limit on the process, and SQLite's
max_page_count on the connection), a corrupt file.

What must hold: the bot halts with exit 1 and one clear line (never a traceback); every record
committed before the fault is still there and the file is consistent (integrity check, every
fill has its order, every mark its positions); `status` still reads it and says the run is not
running; the next run, once the fault is gone, works.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from chaos_support import REPO, clean_env, consistency, integrity, no_traceback, snapshot_ids
from typer.testing import CliRunner

from botctl.cli.app import app

runner = CliRunner()


def botctl(db: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(REPO), "--db", str(db), *args],
                          env=clean_env(), capture_output=True, text=True, timeout=120, **kwargs)


def invoke(db: Path, *args: str):
    result = runner.invoke(app, ["--config-dir", str(REPO), "--db", str(db), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def one_line_error(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if not line.startswith("[")]  # progress lines
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert no_traceback(text), text
    return lines[0]


@pytest.fixture(scope="module")
def base_journal(tmp_path_factory) -> Path:
    """A journal holding a finished replay of the first half of 2015 (both shipped accounts)."""
    db = tmp_path_factory.mktemp("base") / "journal.db"
    assert invoke(db, "run", "--replay", "2015-01-01:2015-06-30").exit_code == 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


@pytest.fixture
def journal(base_journal, tmp_path) -> Path:
    db = tmp_path / "journal.db"
    shutil.copy(base_journal, db)
    return db


def _spawn_replay(db: Path, *extra: str, **kwargs) -> subprocess.Popen:
    argv = [sys.executable, "-m", "botctl", "--config-dir", str(REPO), "--db", str(db), "run", "--replay",
            "2015-07-01:2024-12-31", *extra]
    return subprocess.Popen(argv, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _orders(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]


def _wait_for_new_orders(db: Path, proc: subprocess.Popen, than: int, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if _orders(db) > than:
            return
        time.sleep(0.05)
    raise AssertionError("the replay wrote no order")


def _status(db: Path) -> tuple[int, dict]:
    proc = botctl(db, "status", "--json")
    assert no_traceback(proc.stdout + proc.stderr), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


# --- a lock held by another process ----------------------------------------------------------------


@pytest.fixture(scope="module")
def locked_halt(tmp_path_factory, base_journal):
    db = tmp_path_factory.mktemp("locked") / "journal.db"
    shutil.copy(base_journal, db)
    proc = _spawn_replay(db, "--speed", "200000")  # ~0.4 s per session: still running when locked
    locker = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        _wait_for_new_orders(db, proc, _orders(db))
        locker.execute("BEGIN EXCLUSIVE")
        held = snapshot_ids(db)  # nothing can commit from here on
        started = time.monotonic()
        out, err = proc.communicate(timeout=60)
        waited = time.monotonic() - started
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    yield {"db": db, "proc": proc, "out": out, "err": err, "held": held, "waited": waited}


@pytest.mark.timeout(120)
def test_a_locked_journal_halts_the_replay_with_a_clear_message_and_loses_nothing(locked_halt):
    db, proc = locked_halt["db"], locked_halt["proc"]
    assert proc.returncode == 1, locked_halt["err"]
    line = one_line_error(locked_halt["err"])
    assert "is locked by another process (waited 5s)" in line, line
    assert 4.5 <= locked_halt["waited"] < 30  # it waited for the lock (busy_timeout), then gave up
    assert integrity(db) == "ok" and consistency(db) == []
    assert snapshot_ids(db) == locked_halt["held"]  # every committed record, nothing half-written
    code, body = _status(db)
    assert code == 1 and body["healthy"] is False and "last run failed" in body["state"], body["state"]
    assert body["accounts"]["rotation-sim"]["nav"] is not None
    failed_run = body["run"]["run_id"]
    again = invoke(db, "run", "--replay", "2024-01-02:2024-01-31")
    assert again.exit_code == 0, again.output
    assert integrity(db) == "ok" and consistency(db) == []
    # the end written beside the journal was moved into it by the next run, then removed
    assert not Path(str(db) + ".run-end.json").exists()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        status, note = conn.execute("SELECT status, note FROM runs WHERE run_id = ?", (failed_run,)).fetchone()
        events = conn.execute("SELECT severity, message FROM events WHERE run_id = ? AND type = 'run.failed'",
                              (failed_run,)).fetchall()
    assert status == "failed" and "locked" in note
    assert len(events) == 1 and events[0][0] == "ERROR" and "locked" in events[0][1]


# --- a read-only file -----------------------------------------------------------------------------


def _make_read_only(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o444)
        return
    # root writes through file modes: use the immutable attribute where the file system has it
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root without chattr +i: cannot make the journal read-only")


def _make_writable(path: Path) -> None:
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    path.chmod(0o644)


@pytest.mark.timeout(60)
def test_a_read_only_journal_is_refused_before_anything_is_written(journal):
    digest = hashlib.sha256(journal.read_bytes()).hexdigest()
    _make_read_only(journal)
    try:
        proc = botctl(journal, "run", "--replay", "2015-07-01:2015-09-30")
        assert proc.returncode == 1
        assert "is read-only; botctl needs to write to it" in one_line_error(proc.stderr)
        assert hashlib.sha256(journal.read_bytes()).hexdigest() == digest
        code, body = _status(journal)  # reading still works
        assert code == 0 and body["state"] == "last run finished", body
        tailed = botctl(journal, "tail", "--json", "-n", "2")
        assert tailed.returncode == 0 and len(tailed.stdout.splitlines()) == 2
    finally:
        _make_writable(journal)
    assert invoke(journal, "run", "--replay", "2015-07-01:2015-07-31").exit_code == 0


# --- a full disk ------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE/SIGXFSZ as on Linux")
def test_a_full_disk_mid_replay_halts_with_a_clear_message_and_keeps_what_was_committed(journal):
    """The replay's process may not grow any file past a limit a few MB over the journal (what
    a full disk looks like to it: writes fail mid-run), while another process keeps reading."""
    limit = max(p.stat().st_size for p in journal.parent.iterdir()) + 2_000_000

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    seen: list[dict] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(snapshot_ids(journal))
            except sqlite3.Error:
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        proc = _spawn_replay(journal, preexec_fn=limited)
        out, err = proc.communicate(timeout=90)
    finally:
        stop.set()
        thread.join()
    assert proc.returncode == 1, err
    line = one_line_error(err)
    assert str(journal) in line and ("disk" in line or "full" in line), line
    assert integrity(journal) == "ok" and consistency(journal) == []
    after = snapshot_ids(journal)
    assert len(seen) >= 2 and len(seen[-1]["nav"]) > len(seen[0]["nav"]), "the reader saw no progress"
    for snap in seen:
        for table, ids in snap.items():
            assert ids <= after[table], f"committed {table} rows lost"
    code, body = _status(journal)
    assert code == 1 and body["state"].startswith("last run failed") and "disk" in body["state"], body["state"]
    again = botctl(journal, "run", "--replay", "2024-01-02:2024-01-31")  # space is back
    assert again.returncode == 0, again.stderr
    assert integrity(journal) == "ok" and consistency(journal) == []


@pytest.mark.timeout(60)
def test_max_page_count_reached_mid_replay_rolls_back_the_session_and_keeps_the_rest(journal):
    from botctl.adapters.file_data import load_bars
    from botctl.cli.common import Globals, load_plan
    from botctl.errors import StoreError
    from botctl.runtime.replay import run_replay
    from botctl.store import Store
    from botctl.strategy.bars import bars_from_frame

    plan = load_plan(Globals(config_dir=REPO, db=journal, data=None))
    bars = bars_from_frame(load_bars(None), plan.symbols)
    before = snapshot_ids(journal)
    with Store.open(journal) as store:
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        assert store.conn.execute(f"PRAGMA max_page_count = {pages + 40}").fetchone()[0] == pages + 40
        with pytest.raises(StoreError) as caught:
            run_replay(plan, bars, store, date(2015, 7, 1), date(2024, 12, 31), speed=None)
    message = str(caught.value)
    assert "database or disk is full" in message and str(journal) in message and len(message.splitlines()) == 1
    assert integrity(journal) == "ok" and consistency(journal) == []
    after = snapshot_ids(journal)
    assert all(before[t] <= after[t] for t in before)
    assert len(after["nav"]) > len(before["nav"])  # it got somewhere before the file was full
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as conn:
        # a session is all or nothing: every account marked, with positions, or none
        per_close = conn.execute("SELECT ts_event, COUNT(*) FROM nav GROUP BY ts_event HAVING COUNT(*) != ?",
                                 (len(plan.accounts),)).fetchall()
    assert per_close == []


# --- a corrupt file ------------------------------------------------------------------------------------


def _corrupt(db: Path, how: str) -> None:
    data = bytearray(db.read_bytes())
    rng = random.Random(how)
    if how == "header":
        data[0:100] = bytes(rng.randrange(256) for _ in range(100))
    elif how == "scattered-pages":
        for offset in range(4096 * 3, len(data), 4096 * 5):
            data[offset: offset + 512] = bytes(rng.randrange(256) for _ in range(512))
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "zeroed-tail":
        data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    db.write_bytes(bytes(data))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["header", "scattered-pages", "truncated"])
def test_a_corrupt_journal_is_refused_with_one_line_by_run_status_and_tail(journal, how):
    _corrupt(journal, how)
    for args in (("run", "--replay", "2015-07-01:2015-09-30"), ("status", "--json"), ("status",)):
        result = invoke(journal, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "is not a botctl database" in one_line_error(result.stderr), (args, result.output)
        if "--json" in args:  # the error as JSON on stdout too
            assert json.loads(result.stdout)["exit_code"] == 1
    for kind in ("events", "orders", "nav"):
        result = invoke(journal, "tail", "--kind", kind)
        assert result.exit_code in (0, 1) and no_traceback(result.output), result.output  # undamaged pages read
        if result.exit_code:
            one_line_error(result.output)


@pytest.mark.timeout(60)
def test_status_on_a_journal_with_zeroed_pages_gives_the_store_error_not_an_internal_error(journal):
    _corrupt(journal, "zeroed-tail")
    result = invoke(journal, "status", "--json")
    assert result.exit_code == 1
    assert "is not a botctl database" in one_line_error(result.stderr), result.output
