"""Operating a running bot with real processes: status, tail -f, kill, kill --flatten, resume,
a restart while halted, the health endpoint, and kill with no bot running."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(db: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db), *args],
                          capture_output=True, text=True, timeout=timeout)


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    for _ in range(50):
        try:
            with sqlite3.connect(db) as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # created but not yet migrated
            time.sleep(0.1)
    raise AssertionError(f"cannot query {db}")


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Bot:
    """`botctl run --replay` in a subprocess, paced at about one session per second."""

    def __init__(self, db: Path, replay: str = "2021-01-01:2021-12-31", port: int = 0) -> None:
        self.db = db
        args = [sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db), "run", "--replay", replay,
                "--speed", "86400", "--health-port", str(port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sessions_marked(self) -> int:
        if not self.db.exists():
            return 0
        marks = query(self.db, "select count(*) from nav where account = 'rotation-sim'")[0][0]
        return max(0, marks - 1)  # the first mark is the money put in, before the first session

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode, out

    def kill_hard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def bot(tmp_path):
    started = []

    def start(**kwargs) -> Bot:
        b = Bot(tmp_path / "botctl.db", **kwargs)
        started.append(b)
        return b

    yield start
    for b in started:
        b.kill_hard()


def test_status_tail_kill_flatten_resume_against_a_running_bot(bot, tmp_path):
    db = tmp_path / "botctl.db"
    running = bot()
    wait_for(lambda: running.sessions_marked() >= 3, what="the first sessions")

    status = cli(db, "status", "--json")
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["running"] is True and body["pid"] == running.proc.pid
    assert body["accounts"]["rotation-sim"]["positions"], "the first session allocated"

    follower = subprocess.Popen([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db),
                                 "tail", "-f", "-n", "0", "--kind", "nav", "--json", "--interval", "0.1"],
                                stdout=subprocess.PIPE, text=True)
    try:
        line = json.loads(follower.stdout.readline())  # a new NAV row written after tail started
        assert line["kind"] == "nav" and line["account"] in ("rotation-sim", "adaptive-sim", "signals-sim")
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
    assert follower.returncode == 0

    # kill one account without flatten: acknowledged, positions kept, no new orders.
    clock = time.monotonic()
    killed = cli(db, "kill", "--account", "rotation-sim", "--reason", "drill one", "--json")
    assert killed.returncode == 0, killed.stderr
    assert json.loads(killed.stdout)["acknowledged"] == {"rotation-sim": True}
    assert time.monotonic() - clock < 10
    (halted, reason, who, acked), = query(db, "select halted, reason, who, acked_at from control where account='rotation-sim'")
    assert halted == 1 and reason == "drill one" and "botctl" in who and "kill" in who and acked
    orders_at_kill = query(db, "select count(*) from orders where account='rotation-sim'")[0][0]

    # kill --flatten the other: its positions are sold at the next open.
    flat = cli(db, "kill", "--account", "adaptive-sim", "--flatten", "--reason", "drill two")
    assert flat.returncode == 0, flat.stderr
    wait_for(lambda: not json.loads(cli(db, "status", "--json").stdout)["accounts"]["adaptive-sim"]["positions"],
             what="adaptive-sim to be flat")
    assert query(db, "select count(*) from events where account='adaptive-sim' and type='kill.flatten'")[0][0] == 1

    # While halted (and across a month-end rebalance), neither account places a new trade.
    marked = running.sessions_marked()
    wait_for(lambda: running.sessions_marked() >= marked + 3, what="more sessions")
    assert query(db, "select count(*) from orders where account='rotation-sim'")[0][0] == orders_at_kill
    status = json.loads(cli(db, "status", "--json").stdout)
    assert status["accounts"]["rotation-sim"]["halted"] and status["accounts"]["rotation-sim"]["halt_reason"] == "drill one"
    assert status["accounts"]["rotation-sim"]["positions"], "a kill without --flatten keeps positions"

    resumed = cli(db, "resume", "--account", "rotation-sim")
    assert resumed.returncode == 0 and "rotation-sim" in resumed.stdout
    wait_for(lambda: query(db, "select count(*) from events where account='rotation-sim' and type='halt.cleared'")[0][0] == 1,
             what="the bot to see the resume")
    code, out = running.stop()
    assert code == 0 and "replay stopped" in out


def test_a_bot_restarted_while_halted_does_not_trade(bot, tmp_path):
    db = tmp_path / "botctl.db"
    first = bot(replay="2021-01-01:2021-01-15")
    assert first.proc.wait(timeout=120) == 0
    assert cli(db, "kill", "--reason", "weekend maintenance").returncode == 0  # no bot running: acts directly
    before = query(db, "select count(*) from orders")[0][0]
    second = bot(replay="2021-02-01:2021-02-05")
    assert second.proc.wait(timeout=120) == 0
    assert query(db, "select count(*) from orders")[0][0] == before, "a halted restart places no order"
    runs = query(db, "select kind, status from runs order by id")
    assert runs[-1] == ("replay", "finished")


def test_kill_with_no_bot_running_leaves_a_finished_replay_as_it_was(bot, tmp_path):
    """A replay is not an account's state: a kill --flatten afterwards halts, sells nothing of
    the replay's book and adds no mark (no NAV dated today in the replay's history)."""
    db = tmp_path / "botctl.db"
    done = bot(replay="2021-03-01:2021-03-05")
    assert done.proc.wait(timeout=120) == 0
    held = query(db, "select count(*) from positions where account='rotation-sim' and run_id=(select run_id from runs where kind='replay')"
                     " and ts_event=(select max(ts_event) from positions where account='rotation-sim')")[0][0]
    assert held > 0
    before = query(db, "select account, count(*), max(ts_event) from nav group by account order by account")
    result = cli(db, "kill", "--flatten", "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["running"] is False
    assert {r["account"]: r["sold"] for r in body["accounts"]} == {"rotation-sim": 0, "adaptive-sim": 0, "signals-sim": 0}
    assert all("holds nothing to sell" in r["note"] for r in body["accounts"])  # says why nothing was sold
    assert query(db, "select account, count(*), max(ts_event) from nav group by account order by account") == before
    assert query(db, "select count(*) from orders o join runs r using (run_id) where r.kind = 'manual'") == [(0,)]
    status = json.loads(cli(db, "status", "--json").stdout)
    for account in status["accounts"].values():
        assert account["halted"] and account["positions"]  # the replay's last book, shown as it was
    assert query(db, "select kind from runs order by id desc limit 1") == [("manual",)]


def hold_writer_lock(db: Path) -> subprocess.Popen:
    """A process (named like botctl) holding the journal's writer lock, as a trading bot does."""
    code = ("import fcntl, json, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); "
            "os.write(fd, json.dumps({'pid': os.getpid(), 'command': 'botctl run', 'since': '2026-01-02T03:04:05Z'}).encode()); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, os.path.realpath(db) + ".lock", "botctl"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_kill_reports_a_timeout_when_the_running_bot_does_not_acknowledge(tmp_path):
    db = tmp_path / "botctl.db"
    assert cli(db, "run", "--replay", "2021-03-01:2021-03-03", "--health-port", "0").returncode == 0
    # A process holds the journal's writer lock, as a running bot does, but never reads the halt.
    holder = hold_writer_lock(db)
    try:
        result = cli(db, "kill", "--timeout", "1")
        assert result.returncode == 1
        assert "timeout" in result.stderr and "NOT acknowledged" in result.stdout
        assert f"pid {holder.pid}" in result.stdout and "`botctl run`" in result.stderr
        assert query(db, "select halted, acked_at from control") == [(1, None)] * 3  # recorded, left to the holder
    finally:
        holder.kill()


def test_health_and_metrics_while_running(bot, tmp_path):
    port = free_port()
    running = bot(port=port)
    wait_for(lambda: running.sessions_marked() >= 2, what="the first sessions")
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    assert health["status"] == "healthy" and health["cycles"] >= 2
    assert set(health["accounts"]) == {"rotation-sim", "adaptive-sim", "signals-sim"}
    assert health["accounts"]["rotation-sim"]["halted"] is False
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for name in ("botctl_nav{account=\"rotation-sim\"}", "botctl_orders_total", "botctl_fills_total",
                 "botctl_cycle_duration_seconds_count", "botctl_gross_leverage"):
        assert name in metrics
    assert cli(tmp_path / "botctl.db", "kill", "--account", "adaptive-sim").returncode == 0
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["status"] == "degraded",
             what="health to show the halt")
    assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=5).status_code == 404
    assert running.stop()[0] == 0
