"""status and tail over a journal left by a real replay, and over bad journals."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from botctl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


def botctl(db: Path, *args: str):
    return CliRunner().invoke(app, ["--config-dir", str(ROOT), "--db", str(db), *args])


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("replay") / "botctl.db"
    result = botctl(db, "run", "--replay", "2021-01-01:2021-03-31")
    assert result.exit_code == 0, result.output
    return db


def test_status_json_has_the_documented_keys_and_figures(replayed):
    result = botctl(replayed, "status", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert {"running", "pid", "heartbeat_at", "accounts"} <= set(body)
    assert body["running"] is False
    assert set(body["accounts"]) == {"rotation-sim", "adaptive-sim", "signals-sim"}
    with sqlite3.connect(replayed) as conn:
        nav, cash = conn.execute("select nav, cash from nav where account='adaptive-sim' order by id desc limit 1").fetchone()
    account = body["accounts"]["adaptive-sim"]
    for key in ("mode", "broker", "halted", "halt_reason", "nav", "cash", "leverage", "positions", "open_orders",
                "models", "last_cycle_at", "next_cycle_at"):
        assert key in account
    assert account["nav"] == pytest.approx(nav) and account["cash"] == pytest.approx(cash)
    assert (account["broker"], account["mode"], account["halted"]) == ("sim", "paper", False)
    assert account["models"][0]["name"] == "SectorRotationAdaptive_v3"
    value = sum(p["value"] for p in account["positions"])
    assert value + cash == pytest.approx(nav)
    assert account["leverage"] == pytest.approx(sum(abs(p["value"]) for p in account["positions"]) / nav)


def test_status_exits_1_when_the_recorded_bot_is_dead(replayed, tmp_path):
    db = tmp_path / "dead.db"
    with sqlite3.connect(replayed) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    stale = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with sqlite3.connect(db) as conn:  # a run that claims to be running with a pid that is gone
        conn.execute("update runs set status='running', pid=?, heartbeat_at=?", (2**22 + 12345, stale))
    result = botctl(db, "status")
    assert result.exit_code == 1
    assert "UNHEALTHY" in result.output and "not running" in result.output


def test_status_does_not_trust_a_reused_pid(replayed, tmp_path):
    db = tmp_path / "reused.db"
    with sqlite3.connect(replayed) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with sqlite3.connect(db) as conn:  # pid 1 is alive, but it is not a botctl run
        conn.execute("update runs set status='running', pid=1, heartbeat_at=?", (now,))
    assert botctl(db, "status", "--json").exit_code == 1


@pytest.mark.parametrize("kind", ["orders", "fills", "nav", "events"])
def test_tail_prints_the_newest_rows_oldest_first(replayed, kind):
    result = botctl(replayed, "tail", "--kind", kind, "-n", "3", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert 1 <= len(rows) <= 3 and all(r["kind"] == kind for r in rows)
    stamps = [r.get("ts_event") for r in rows]
    assert stamps == sorted(stamps)


def test_tail_filters_by_account_and_symbol(replayed):
    result = botctl(replayed, "tail", "--kind", "fills", "-n", "50", "--account", "rotation-sim", "--symbol", "xle", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows and {(r["account"], r["symbol"]) for r in rows} == {("rotation-sim", "XLE")}


@pytest.mark.parametrize("args", [["--kind", "trades"], ["--kind", "nav", "--severity", "WARN"], ["--severity", "LOUD"]])
def test_tail_rejects_bad_arguments_with_usage_exit(replayed, args):
    assert botctl(replayed, "tail", *args).exit_code == 2


def test_status_and_tail_explain_bad_journals(tmp_path):
    missing = tmp_path / "missing.db"
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(os.urandom(8192))
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("create table customers (id integer)")
    for db, text in [(missing, "no database at"), (corrupt, "not a botctl database"), (foreign, "foreign schema")]:
        for command in (["status"], ["tail"]):
            result = botctl(db, *command)
            assert result.exit_code == 1, (db, command, result.output)
            assert text in result.output and "Traceback" not in result.output
    assert not missing.exists()  # reading never creates a journal
