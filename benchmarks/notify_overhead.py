"""What notifications cost. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/notify_overhead.py [--period 2024-01-02:2024-12-31]

1. Wall time of `botctl --version` and `botctl status` (a fresh process each, median of 5):
   apprise must not be imported by them (checked and printed too).
2. Time of the replay loop itself (`run_replay` in this process: what trading waits for,
   without start-up and the final flush), median of 3, with and without the notifier.
3. Wall time of `botctl run --replay PERIOD` (shipped plan, fresh journal, median of 3)
   without notify.yaml, and with every event routed (kinds: [replay]) to a receiver that
   answers, one that is down (connection refused) and one that hangs past the timeout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "notify"))
from receiver import Receiver  # noqa: E402

BOTCTL = [sys.executable, "-m", "botctl"]


def timed(args: list[str], env: dict) -> float:
    began = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - began
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    return elapsed


def median(args: list[str], env: dict, n: int, fresh_db: Path | None = None) -> float:
    times = []
    for _ in range(n):
        if fresh_db is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(str(fresh_db) + suffix).unlink(missing_ok=True)
        times.append(timed(args, env))
    return statistics.median(times)


def loop_seconds(config: Path, work: Path, period: str, url: str | None) -> float:
    from datetime import date

    from botctl.adapters.file_data import load_bars
    from botctl.cli.common import Globals, load_plan
    from botctl.notify.setup import for_run
    from botctl.runtime.replay import run_replay
    from botctl.store import Store
    from botctl.strategy.bars import bars_from_frame

    notify = config / "notify.yaml"
    notify.unlink(missing_ok=True)
    if url:
        notify.write_text(f'destinations: {{ops: {{url: "{url}"}}}}\nroutes: [{{to: ops}}]\nkinds: [replay]\n'
                          "timeout_seconds: 1\nflush_seconds: 0\n")
    start, end = (date.fromisoformat(x) for x in period.split(":"))
    times = []
    for i in range(3):
        g = Globals(config_dir=config, db=work / f"loop-{i}-{bool(url)}.db", data=None)
        plan = load_plan(g)
        bars = bars_from_frame(load_bars(None), plan.symbols)
        with Store.open(g.db) as store, for_run(g, plan, store, None, bars=bars):
            began = time.perf_counter()
            run_replay(plan, bars, store, start, end, speed=None)
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--period", default="2024-01-02:2024-12-31")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="botctl-notify-bench-"))
    config = work / "config"
    config.mkdir()
    for name in ("strategies.yaml", "accounts.yaml"):
        shutil.copy(ROOT / name, config / name)
    env = {**os.environ, "BOTCTL_HEALTH_PORT": "0", "BOTCTL_CONFIG_DIR": str(config), "BOTCTL_DB": str(work / "b.db")}

    subprocess.run([*BOTCTL, "run", "--replay", "2024-01-02:2024-01-10"], capture_output=True, env=env, check=True)
    print(f"botctl --version: {median([*BOTCTL, '--version'], env, 5) * 1000:.0f} ms (median of 5)")
    print(f"botctl status:    {median([*BOTCTL, 'status'], env, 5) * 1000:.0f} ms (median of 5)")
    probe = "import sys; from botctl.cli.app import app; print('apprise' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout.strip()
    print(f"apprise imported by the CLI at start-up: {loaded}")

    replay = [*BOTCTL, "run", "--replay", args.period]
    db = work / "b.db"
    print(f"replay {args.period}, shipped plan, median of 3:")
    print(f"  no notify.yaml:        {median(replay, env, 3, db):6.2f} s")
    ok, hanging = Receiver().start(), Receiver().start()
    hanging.hang_seconds = 5.0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    for label, url in (("receiver answers", ok.url), ("receiver down", f"json://127.0.0.1:{dead}/hook"),
                       ("receiver hangs (5 s)", hanging.url)):
        (config / "notify.yaml").write_text(textwrap.dedent(f"""\
            destinations: {{ops: {{url: "{url}"}}}}
            routes: [{{to: ops}}]
            kinds: [replay]
            timeout_seconds: 1
            flush_seconds: 2
            """))
        print(f"  {label + ':':22s} {median(replay, env, 3, db):6.2f} s")
    print(f"replay loop only (run_replay in this process), {args.period}, median of 3:")
    for label, url in (("no notifier", None), ("receiver down", f"json://127.0.0.1:{dead}/hook"),
                       ("receiver hangs (5 s)", hanging.url)):
        print(f"  {label + ':':22s} {loop_seconds(config, work, args.period, url):6.2f} s")
    ok.stop()
    hanging.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
