"""Notifications from a real `botctl run --replay` subprocess, and `botctl notify test`."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from notify_support import SECRET, write_notify
from typer.testing import CliRunner

from botctl.cli.app import app

PERIOD = "2024-02-26:2024-03-08"  # 10 sessions, a monthly rebalance on 2024-03-01


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def replay(config_dir: Path, db: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOOK_SECRET": SECRET, "BOTCTL_HEALTH_PORT": "0"}
    return subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(config_dir), "--db", str(db),
                           "run", "--replay", PERIOD, "--json"], capture_output=True, text=True, env=env, timeout=120)


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_a_dead_receiver_changes_nothing_the_replay_does(tmp_path, config_dir):
    plain = replay(config_dir, tmp_path / "plain.db")
    write_notify(config_dir, f"json://127.0.0.1:{dead_port()}/{{env:HOOK_SECRET}}")
    noisy = replay(config_dir, tmp_path / "noisy.db")
    assert plain.returncode == 0 and noisy.returncode == 0, noisy.stderr
    a, b = json.loads(plain.stdout), json.loads(noisy.stdout)
    assert (a["navs"], a["orders"], a["sessions"]) == (b["navs"], b["orders"], b["sessions"])
    trade = "SELECT account, symbol, side, qty, status, avg_fill_price FROM orders ORDER BY id"
    assert rows(tmp_path / "plain.db", trade) == rows(tmp_path / "noisy.db", trade)
    failed = rows(tmp_path / "noisy.db", "SELECT message, details FROM events WHERE type = 'notify.failed'")
    assert failed and not rows(tmp_path / "noisy.db", "SELECT 1 FROM events WHERE type = 'notify.sent'")
    assert all(json.loads(d)["url"].endswith("/{env:HOOK_SECRET}") for _, d in failed)
    for text in (noisy.stdout, noisy.stderr, (tmp_path / "noisy.db").read_bytes().decode("utf-8", "replace")):
        assert SECRET not in text


def test_a_replay_tells_its_rebalances_once_each_and_every_close(tmp_path, config_dir, receiver):
    write_notify(config_dir, receiver.url.replace("/hook", "/{env:HOOK_SECRET}"))
    done = replay(config_dir, tmp_path / "botctl.db")
    assert done.returncode == 0, done.stderr
    db = tmp_path / "botctl.db"
    titles = receiver.titles()
    cycles = {(acc, cid.rsplit("-", 2)[0]) for acc, cid in rows(db, "SELECT account, client_order_id FROM orders")}
    rebalances = [t for t in titles if ": rebalance, " in t]
    assert len(rebalances) == len(cycles)  # one message per cycle that traded, whatever the account
    # the two rotation accounts: two rebalances each (the first session, 03-01); the signal book when it trades
    assert len([c for c in cycles if c[0] != "signals-sim"]) == 4
    accounts = {acc for (acc,) in rows(db, "SELECT DISTINCT account FROM nav")}
    summaries = [t for t in titles if "daily summary" in t]
    assert len(summaries) == len(accounts) * 10 and all(t.startswith("[replay] ") for t in summaries)
    assert "[replay] INFO run.started" in titles and "[replay] INFO run.finished" in titles
    assert all(m["_path"] == f"/{SECRET}" for m in receiver.messages)  # the secret reached only the receiver
    sent = rows(db, "SELECT COUNT(*) FROM events WHERE type = 'notify.sent'")[0][0]
    assert sent == len(titles)
    assert SECRET not in done.stderr and SECRET.encode() not in db.read_bytes()


def cli(config_dir: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(app, ["--config-dir", str(config_dir), "notify", "test", *args],
                              env={"HOOK_SECRET": SECRET, **(env or {})})


def test_notify_test_sends_to_a_destination_and_fails_in_one_masked_line(config_dir, receiver):
    write_notify(config_dir, receiver.url.replace("/hook", "/{env:HOOK_SECRET}"))
    ok = cli(config_dir, "--to", "ops")
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == f"sent to ops (json://127.0.0.1:{receiver.port}/{{env:HOOK_SECRET}})"
    assert receiver.titles() == ["botctl test message"]

    receiver.stop()
    down = cli(config_dir)
    assert down.exit_code == 1
    (line,) = down.output.strip().splitlines()
    assert line.startswith("error: notify test: not delivered to ops (json://127.0.0.1:") and SECRET not in line

    url = cli(config_dir, "--url", f"json://127.0.0.1:{dead_port()}/{SECRET}")
    assert url.exit_code == 1 and SECRET not in url.output and "/****" in url.output
    assert cli(config_dir, "--to", "nobody").exit_code == 2
    assert cli(config_dir, "--url", "carrierpigeon://coop").exit_code == 2


def test_notify_test_reports_a_missing_variable_as_a_config_error(config_dir):
    write_notify(config_dir, "json://127.0.0.1:9/{env:HOOK_SECRET}")
    result = CliRunner().invoke(app, ["--config-dir", str(config_dir), "notify", "test"], env={"HOOK_SECRET": ""})
    assert result.exit_code == 4
    assert "notify.yaml:2:" in result.output and "HOOK_SECRET is not set" in result.output


def test_a_paper_run_once_tells_each_accounts_rebalance_in_one_message(tmp_path, config_dir, receiver):
    write_notify(config_dir, receiver.url, kinds="[paper]")
    env = {**os.environ, "BOTCTL_CLOCK": "2024-03-01T15:30:00Z*1", "BOTCTL_HEALTH_PORT": "0"}
    done = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(config_dir), "--db", str(tmp_path / "b.db"),
                           "run", "--once", "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    orders = dict(rows(tmp_path / "b.db", "SELECT account, COUNT(*) FROM orders GROUP BY account"))
    rebalances = sorted(t for t in receiver.titles() if ": rebalance, " in t)
    assert rebalances == [f"{acc}: rebalance, {n} order(s) ({n} filled)" for acc, n in sorted(orders.items())]
    assert "INFO run.finished" in receiver.titles()
