"""Sweep speed. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/sweep_speed.py [--trials N] [--big 1000] [--no-cluster]

The shipped rotation (SectorRotationModel_v1) over 2015-01-01 .. 2024-12-31, a grid over
select_momentum.lookback_days x top x scale_leverage.gross:

1. trials per second in one process, and in the local process pool over every core;
2. the same trials through a 2-worker Dask LocalCluster on loopback (when dask is installed);
3. the wall time of a 1,000-trial sweep in the local pool (--big 0 skips it);
4. overhead per trial beyond the engine's own time (BacktestResult.engine_seconds): config
   edit + decode + validate + compile + metrics in the trial, and pool/cluster transport;
5. the machine's load (uptime) before and after, since the figures depend on it;
6. vectorbt on the same lookback x top grid, when it is importable.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "SectorRotationModel_v1"
AXES = [(f"{MODEL}.select_momentum.lookback_days", list(range(21, 274, 21))),
        (f"{MODEL}.select_momentum.top", [1, 2, 3, 4, 5, 6]),
        (f"{MODEL}.scale_leverage.gross", [0.5 + 0.125 * i for i in range(13)])]  # 13 x 6 x 13 = 1,014


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime unavailable"


def timed(prep, jobs, **where):
    from botctl.research.execute import run_jobs

    outcomes = []
    clock = time.perf_counter()
    run_jobs(prep.setup, prep.bars, jobs, lambda job, outcome: outcomes.append(outcome), **where)
    wall = time.perf_counter() - clock
    failed = [o.reason for o in outcomes if o.status != "ok"]
    if failed:
        print(f"  ({len(failed)} trial(s) failed: {failed[0]})")
    return wall, outcomes


def report(name: str, wall: float, outcomes, workers: int) -> None:
    engine = sum(o.engine_seconds for o in outcomes)
    backtest = sum(o.backtest_seconds for o in outcomes)
    trial = sum(o.seconds for o in outcomes)
    n = len(outcomes)
    print(f"{name}: {n} trials in {wall:.2f} s = {n / wall:.2f} trials/s")
    print(f"  per trial: engine loop {engine / n * 1000:.0f} ms, whole run_backtest {backtest / n * 1000:.0f} ms "
          f"(+ round trips, benchmark), whole trial {trial / n * 1000:.0f} ms")
    print(f"  research overhead (config edit, decode, validate, compile, metrics, return stats) beyond "
          f"run_backtest: {(trial - backtest) / backtest:.1%}; beyond the engine loop alone: {(trial - engine) / engine:.1%}")
    print(f"  wall x {workers} worker(s) vs trial time: {(wall * workers - trial) / trial:+.1%} "
          "(worker start, transport, journal-free here; waiting on a shared CPU counts too)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=60, help="trials for the speed comparisons")
    parser.add_argument("--big", type=int, default=1000, help="trials of the big sweep (0 skips it)")
    parser.add_argument("--no-cluster", action="store_true")
    args = parser.parse_args()

    from botctl.research.execute import Job, default_workers
    from botctl.research.grid import Grid
    from botctl.research.prepare import prepare

    print(f"load before: {uptime()}")
    print(f"cores available: {default_workers()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("strategies.yaml", "accounts.yaml"):
            (Path(tmp) / name).write_bytes((ROOT / name).read_bytes())
        clock = time.perf_counter()
        prep = prepare(Path(tmp), None, [f"{p}={','.join(map(str, v))}" for p, v in AXES], [], model=MODEL,
                       start=date(2015, 1, 1), end=date(2024, 12, 31))
        print(f"setup (config read and every value checked, bars loaded once): {time.perf_counter() - clock:.2f} s; "
              f"grid of {prep.grid.size} combinations")
    grid: Grid = prep.grid
    jobs = [Job(p) for p in grid.combinations(samples=args.trials, seed=1)]
    wall, outcomes = timed(prep, jobs, workers=1)
    report("one process", wall, outcomes, 1)
    workers = default_workers()
    wall_pool, pooled = timed(prep, jobs, workers=workers)
    report(f"local pool ({workers} workers)", wall_pool, pooled, workers)
    print(f"  pool speed-up over one process: {wall / wall_pool:.2f}x")
    if not args.no_cluster:
        try:
            from distributed import LocalCluster
        except ImportError:
            print("dask LocalCluster: dask[distributed] not installed (pip install 'botctl[cluster]')")
        else:
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster:
                wall_dask, remote = timed(prep, jobs, cluster=cluster.scheduler_address)
            report("dask LocalCluster (2 workers, connect + scatter included)", wall_dask, remote, 2)
            same = [o.metrics for o in sorted(remote, key=lambda o: str(o.params))] == \
                   [o.metrics for o in sorted(pooled, key=lambda o: str(o.params))]
            print(f"  results identical to the local pool's: {same}")
    if args.big:
        big = [Job(p) for p in grid.combinations(samples=args.big, seed=2)]
        wall_big, done = timed(prep, big, workers=workers)
        print(f"{len(done)}-trial sweep in the local pool: {wall_big:.1f} s wall ({len(done) / wall_big:.2f} trials/s)")
    try:
        import vectorbt  # noqa: F401
    except ImportError:
        print("vectorbt: not installed; no comparison")
    else:  # pragma: no cover - only where vectorbt is installed
        print("vectorbt: installed, but its momentum rotation needs a custom signal; not compared here")
    print(f"load after: {uptime()}")
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}")


if __name__ == "__main__":
    main()
