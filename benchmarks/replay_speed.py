"""The quick start's replay: wall time of `botctl run --replay 2015-01-01:` of the shipped plan.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/replay_speed.py [--runs 3]

Each run is a fresh process on a fresh journal in a temporary folder (the shipped
strategies.yaml and accounts.yaml, the bundled prices, the simulated broker): imports, the
data, the calendar, every session's cycles and marks, and each cycle journaled as paper
trading journals it. The machine's load average is printed first and last: figures taken on a
busy machine are slower.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def replay_once(folder: str, i: int) -> tuple[float, str]:
    clock = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", f"{folder}/r{i}.db",
                          "run", "--replay", "2015-01-01:"], capture_output=True, text=True)
    seconds = time.perf_counter() - clock
    if out.returncode:
        sys.exit(f"the replay failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
    finished = next((line for line in out.stdout.splitlines() if line.startswith("replay finished")), "")
    return seconds, finished


def main() -> None:
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
    print(f"replay of the shipped plan, {runs} fresh process(es); {load()}")
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(runs):
            seconds, finished = replay_once(folder, i)
            times.append(seconds)
            print(f"  run {i + 1}: {seconds:.2f} s  ({finished})", flush=True)
    print(f"botctl run --replay 2015-01-01: {statistics.median(times):.2f} s wall, median of {runs} "
          f"(min {min(times):.2f} s)")
    print(load())


if __name__ == "__main__":
    main()
