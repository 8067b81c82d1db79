"""Signals and slow clocks: a paced replay and the scheduled loop stop cleanly on SIGTERM,
SIGINT and SIGHUP however slow their clock, heartbeat on real time while they wait, and log
each cycle; `--speed` refuses values that would pace a replay for ages.

Reproductions (before): `--speed 10` was alive 31 s after SIGTERM, `--speed 1e-300` needed a
SIGKILL after 11 minutes, `--speed nan` was accepted, and the heartbeat of a paced replay was
written only at each session's close.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from botctl.cli.app import app
from chaos_support import REPO, botctl_argv, clean_env, killed_on_failure, no_traceback, spawn_replay


def _query(db: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return conn.execute(sql).fetchall()


def _wait_for(db: Path, proc: subprocess.Popen, sql: str, limit: float = 60) -> list[tuple]:
    """Poll the journal until `sql` returns rows (the process must still be alive)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            with contextlib.suppress(sqlite3.OperationalError):  # the journal is being created
                if rows := _query(db, sql):
                    return rows
        time.sleep(0.05)
    raise AssertionError(f"nothing from {sql!r} after {limit}s")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_real_time_replay_stops_cleanly_on_a_signal_while_it_waits(tmp_path, sig):
    """At --speed 1 the first session's rebalance is 31 real minutes away: only a sleep that
    sees the stop flag ends the process before the test's timeout."""
    db = tmp_path / "journal.db"
    proc = spawn_replay(db, REPO, "2020-01-02:2020-12-31", "--speed", "1",
                        env=clean_env(BOTCTL_HEARTBEAT_SECONDS="0.3"))
    with killed_on_failure(proc):
        started = _wait_for(db, proc, "SELECT heartbeat_at FROM runs WHERE status = 'running'")[0][0]
        # the heartbeat moves on real time although the simulated clock has not reached a session
        _wait_for(db, proc, f"SELECT 1 FROM runs WHERE heartbeat_at > '{started}'")
        # only each account's opening mark (the money put in): no session has been marked
        assert _query(db, "SELECT COUNT(*), COUNT(DISTINCT account) FROM nav") == [(3, 3)]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert no_traceback(out + err), err
    assert "replay stopped: 0 sessions" in out, out
    assert _query(db, "SELECT status FROM runs") == [("stopped",)]
    assert _query(db, "SELECT COUNT(*) FROM orders") == [(0,)]  # no session begun after the signal


@pytest.mark.timeout(60)
def test_a_paced_replay_stopped_mid_session_finishes_that_session_whole(tmp_path):
    """A signal after a session's orders but before its close: the close is marked (unpaced)
    and the replay stops; no session is left half-recorded."""
    db = tmp_path / "journal.db"
    proc = spawn_replay(db, REPO, "2020-01-02:2020-12-31", "--speed", "300")  # orders ~6 s in, the close ~70 s later
    with killed_on_failure(proc):
        _wait_for(db, proc, "SELECT 1 FROM orders")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "replay stopped: 1 sessions" in out, out
    marks = _query(db, "SELECT account, COUNT(*) FROM nav GROUP BY account")
    assert len(marks) == 3 and all(n == 2 for _, n in marks), marks  # the opening mark and that close


@pytest.mark.timeout(90)
def test_the_scheduled_loop_logs_each_cycle_and_stops_on_sighup(tmp_path):
    """`botctl run` on an accelerated clock: one stdout line per account cycle with its NAV,
    the next wake-up, and a clean stop on SIGHUP."""
    db = tmp_path / "journal.db"
    # 1 December 2025 is a rebalance session of the shipped plan; 09:00 New York, 600x.
    env = clean_env(BOTCTL_CLOCK="2025-12-01T14:00:00Z*600")
    proc = subprocess.Popen(botctl_argv("--config-dir", str(REPO), "--db", str(db), "run", "--yes"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    with killed_on_failure(proc):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(": " in ln and " NAV $" in ln for ln in lines) < 3:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=15)
    lines += out.splitlines()
    assert proc.returncode == 0, err
    assert no_traceback(err), err
    assert any(ln.startswith("next wake-up 2025-12-01 10:00 EST: ") and "rebalances" in ln for ln in lines), lines
    cycles = [ln for ln in lines if ln.startswith("2025-12-01 ") and " NAV $" in ln]
    assert {ln.split(" ")[1].rstrip(":") for ln in cycles} == {"rotation-sim", "adaptive-sim", "signals-sim"}, lines
    assert all("order(s) sent" in ln and "blocked" in ln for ln in cycles), cycles
    assert _query(db, "SELECT status FROM runs") == [("stopped",)]


@pytest.mark.parametrize("speed", ["nan", "inf", "-inf", "0", "-3", "1e-300", "0.5", "1e10", "fast", ""])
def test_speeds_that_would_pace_for_ages_or_mean_nothing_are_usage_errors(tmp_path, speed):
    result = CliRunner().invoke(app, ["--config-dir", str(REPO), "--db", str(tmp_path / "j.db"), "run",
                                      "--replay", "2020-01-02:2020-01-31", "--speed", speed])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "--speed expects simulated seconds per real second" in result.stderr
    assert not (tmp_path / "j.db").exists()  # refused before anything was written
