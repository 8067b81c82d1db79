"""How long the emergency stop takes to be recorded while something else writes. Prints
figures; asserts nothing.

    .venv/bin/python benchmarks/kill_latency.py [--rounds N]

1. Beside a large backtest's write phase (`botctl backtest` over 2015..the end of the data on
   the same --db): the halt transaction (request_halt) timed in this process, and the whole
   `botctl kill` command, wall time.
2. Beside `botctl run --replay` over ten years at full speed (back-to-back write
   transactions on the journal itself): the same two figures, and how long the replay took to
   acknowledge (the control row's acked_at minus its since).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botctl.runtime.control import clear_halt, request_halt  # noqa: E402
from botctl.store import Store  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("BOTCTL_", "ALPACA_"))} | {"BOTCTL_HEALTH_PORT": "0"}


def botctl(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db), *args]


def wait_until(predicate, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise SystemExit("timed out")


def exists_with_rows(db: Path, table: str) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def halt_once(db: Path) -> tuple[float, float]:
    """(request_halt seconds in this process, `botctl kill` command wall seconds)."""
    with Store.open(db) as store:
        started = time.perf_counter()
        request_halt(store, ["rotation-sim"], flatten=False, reason="benchmark", who="benchmark")
        in_process = time.perf_counter() - started
        clear_halt(store, ["rotation-sim"], who="benchmark")
    started = time.perf_counter()
    subprocess.run(botctl(db, "kill", "--account", "rotation-sim", "--timeout", "30"), env=ENV, capture_output=True)
    command = time.perf_counter() - started
    with Store.open(db) as store:
        clear_halt(store, ["rotation-sim"], who="benchmark")
    return in_process, command


def show(name: str, samples: list[float]) -> None:
    print(f"  {name}: median {statistics.median(samples):.3f} s, max {max(samples):.3f} s ({len(samples)} samples)")


def beside_backtest(rounds: int) -> None:
    halts, commands = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "botctl.db"
            subprocess.run(botctl(db, "run", "--replay", "2024-01-02:2024-01-05"), env=ENV, capture_output=True, check=True)
            proc = subprocess.Popen(botctl(db, "backtest", "--start", "2015-01-01", "--json"), env=ENV,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            backtests = Path(tmp) / "botctl-backtests.db"
            wait_until(lambda: backtests.exists())  # created when the run is done and its write phase starts
            halt, command = halt_once(db)
            halts.append(halt)
            commands.append(command)
            proc.wait()
    print("kill beside a 2015.. backtest's write phase (same --db):")
    show("halt transaction", halts)
    show("`botctl kill` command", commands)


def beside_replay(rounds: int) -> None:
    halts, commands, acks = [], [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "botctl.db"
            proc = subprocess.Popen(botctl(db, "run", "--replay", "2015-01-01:2024-12-31"), env=ENV,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda: exists_with_rows(db, "orders"))
            halt, command = halt_once(db)
            halts.append(halt)
            commands.append(command)
            with sqlite3.connect(db) as conn:
                since, acked = conn.execute("SELECT since, acked_at FROM control WHERE account = 'rotation-sim'").fetchone()
            from datetime import datetime

            if acked:
                acks.append((datetime.fromisoformat(acked.replace("Z", "+00:00"))
                             - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds())
            proc.terminate()
            proc.wait()
    print("kill beside `run --replay` over ten years at full speed (same journal):")
    show("halt transaction", halts)
    show("`botctl kill` command", commands)
    if acks:
        show("halt recorded -> acknowledged by the replay", acks)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    beside_backtest(rounds)
    beside_replay(rounds)
