"""How fast a paced replay stops on a signal. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/stop_latency.py [--speeds 1,10,1000,86400] [--rounds 2]

For each speed and each of SIGTERM, SIGINT and SIGHUP: start `botctl run --replay
2020-01-02:2020-12-31 --speed X` on a fresh journal, wait until its run is journaled and
then 0.5-1.5 s more (so the signal lands inside a paced pause), send the signal and time
until the process has exited; prints the exit code and the run's recorded status.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_status(db: Path) -> str | None:
    with contextlib.suppress(sqlite3.OperationalError), contextlib.closing(
            sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute("SELECT status FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()
        return row[0] if row else None
    return None


def one(speed: str, sig: signal.Signals, rng: random.Random) -> tuple[float, int, str | None]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "j.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTCTL_", "ALPACA_"))}
        proc = subprocess.Popen([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db), "run",
                                 "--replay", "2020-01-02:2020-12-31", "--speed", speed], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while run_status(db) is None:
                if proc.poll() is not None:
                    raise SystemExit(f"replay exited {proc.returncode} before journaling its run")
                time.sleep(0.02)
            time.sleep(rng.uniform(0.5, 1.5))
            sent = time.perf_counter()
            proc.send_signal(sig)
            proc.wait(timeout=120)
            return time.perf_counter() - sent, proc.returncode, run_status(db)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speeds", default="1,10,1000,86400")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(20240301)
    print(f"{os.cpu_count()} CPUs; seconds from the signal to the process's exit")
    worst = 0.0
    for speed in args.speeds.split(","):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            results = [one(speed, sig, rng) for _ in range(args.rounds)]
            worst = max([worst, *(r[0] for r in results)])
            print(f"--speed {speed:>6} {sig.name:7}: " + ", ".join(f"{s:.2f} s (exit {rc}, run {st})"
                                                             for s, rc, st in results))
    print(f"slowest stop: {worst:.2f} s")


if __name__ == "__main__":
    main()
