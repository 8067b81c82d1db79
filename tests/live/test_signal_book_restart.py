"""A paper signal book keeps its position state in the journal: each `run --once` is a fresh
process that restores it, so positions entered on one day are managed, not bought again, on
the next."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_once(db: Path, day: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTCTL_", "ALPACA_"))}
    env["BOTCTL_CLOCK"] = f"{day}T15:05:00Z*1"  # a session within the bundled bars, after the open
    return subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db),
                           "run", "--once", "--yes", "--account", "signals-sim"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_state_survives_each_restart_and_nothing_is_bought_twice(tmp_path):
    db = tmp_path / "j.db"
    first = run_once(db, "2025-12-01")
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(db) as conn:
        bought = conn.execute("select symbol from orders where reason = 'entry' and status = 'filled'").fetchall()
        (state,), = conn.execute("select state from position_state where scope = 'live' and account = 'signals-sim' "
                                 "and model = 'SectorBreakoutBook_v1'").fetchall()
    assert bought and set(json.loads(state)["positions"]) == {s for (s,) in bought}
    for day in ("2025-12-02", "2025-12-03"):
        again = run_once(db, day)
        assert again.returncode == 0, again.stderr
    with sqlite3.connect(db) as conn:
        entries = conn.execute("select symbol, count(*) from orders where reason = 'entry' group by symbol").fetchall()
        (state,), = conn.execute("select state from position_state where account = 'signals-sim'").fetchall()
        events = conn.execute("select count(*) from events where type like 'book.%'").fetchone()[0]
    assert all(n == 1 for _, n in entries), entries  # restored, not re-entered
    positions = json.loads(state)["positions"]
    assert positions and all(p["entry_price"] and p["high_close"] for p in positions.values())
    assert json.loads(state)["as_of"] == "2025-12-02"  # the bar the third day decided on
    assert events >= len(bought)


def test_status_shows_each_book_positions_entry_stop_stage_and_score(tmp_path):
    db = tmp_path / "j.db"
    for day in ("2025-12-01", "2025-12-02"):
        assert run_once(db, day).returncode == 0
    status = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db), "status", "--json"],
                            capture_output=True, text=True, timeout=60)
    shown = json.loads(status.stdout)["accounts"]["signals-sim"]["book_positions"]
    with sqlite3.connect(db) as conn:
        (state,), = conn.execute("select state from position_state where account = 'signals-sim'").fetchall()
    held = json.loads(state)["positions"]
    assert {b["symbol"] for b in shown} == set(held)
    for b in shown:
        p = held[b["symbol"]]
        # the shipped book: a 5% stop loss and a 4% trailing stop; the higher one is in force
        assert b["stop_level"] == max(p["entry_price"] * 0.95, p["high_close"] * 0.96)
        assert (b["entry_price"], b["ladder_stage"], b["score"]) == (p["entry_price"], p["stage"], p["score"])
        assert b["entered_on"] == "2025-11-28" and b["as_of"] == "2025-12-01" and b["age_days"] == 3
    text = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db), "status"],
                          capture_output=True, text=True, timeout=60).stdout
    assert f"book SectorBreakoutBook_v1: {shown[0]['symbol']} entered 2025-11-28" in text and "ladder stage 0" in text
