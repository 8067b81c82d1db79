"""`botctl status` on a big journal. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/status_speed.py [--db PATH] [--rebuild] [--runs N]

The target is under 300 ms wall for the whole command on a journal of a million orders.

1. Builds (once; reused while its contents match) a journal through Store.insert_many:
   1,000,000 orders over the two shipped accounts (rotation-sim, adaptive-sim), fills for
   one order in ten, 5,000 NAV marks with a positions snapshot each, a few thousand events,
   and a handful of still-open orders. Default location: <tmp>/botctl-status-bench/journal.db.
2. Times the whole command in a fresh process, `python -m botctl --config-dir <repo>
   --db <journal> status --json` and `status` without --json: one warm-up, then the median
   (and min/max) of N runs (default 5). Interpreter start-up alone is shown for reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = ("rotation-sim", "adaptive-sim")  # the account ids of the repo's accounts.yaml
SYMBOLS = ("SPY", "QQQ", "IWM", "EFA", "EEM", "TLT", "IEF", "GLD", "VNQ", "DBC", "LQD", "HYG")
N_ORDERS = 1_000_000
N_MARKS = 5_000  # NAV rows, over both accounts
N_EVENTS = 3_000
FILL_EVERY = 10  # one order in ten has a fill
N_OPEN = 6  # open orders per account, at the very end
RUN_ID = "bench-replay"
T0 = datetime(2015, 1, 2, 21, 0, tzinfo=timezone.utc)
# Cache key: a rebuilt journal gets a new one, so a stale or half-built file is never reused.
SHAPE = f"orders={N_ORDERS};marks={N_MARKS};events={N_EVENTS};fills=1/{FILL_EVERY};open={N_OPEN};v3"


def _records():
    """Every record of the journal, in insertion order (streamed; insert_many groups by type)."""
    from botctl.records import Event, Fill, NavSnapshot, Order, Position, Run

    yield Run(run_id=RUN_ID, kind="replay", plan_id="bench", started_at=T0, status="finished",
              pid=4242, ended_at=T0 + timedelta(days=3650), heartbeat_at=T0 + timedelta(days=3650),
              period_start="2015-01-02", period_end="2024-12-31", note=SHAPE)
    marks_per_account = N_MARKS // len(ACCOUNTS)
    orders_per_mark = N_ORDERS // N_MARKS
    n = 0
    for day in range(marks_per_account):
        ts = T0 + timedelta(days=round(day * 365 / 252))  # ~252 marks a year, distinct days
        for a, account in enumerate(ACCOUNTS):
            last = day == marks_per_account - 1
            orders, fills = [], []
            for k in range(orders_per_mark):
                sym = SYMBOLS[(n + k) % len(SYMBOLS)]
                cid = f"{account[:3]}-{day:05d}-{k:04d}"
                is_open = last and k < N_OPEN
                status = "accepted" if is_open else ("filled" if k % 7 else "canceled")
                filled = status == "filled"
                orders.append(Order(
                    client_order_id=cid, run_id=RUN_ID, account=account, symbol=sym,
                    side="buy" if k % 2 else "sell", qty=float(1 + k % 50), status=status,
                    ts_init=ts, ts_event=ts + timedelta(seconds=2), ref_price=100.0 + k % 13,
                    filled_qty=float(1 + k % 50) if filled else 0.0,
                    avg_fill_price=100.0 + k % 13 if filled else None, broker_order_id=f"b{n + k}",
                ))
                if filled and (n + k) % FILL_EVERY == 0:
                    fills.append(Fill(
                        fill_id=f"f-{cid}", client_order_id=cid, run_id=RUN_ID, account=account,
                        symbol=sym, side="buy" if k % 2 else "sell", qty=float(1 + k % 50),
                        price=100.0 + k % 13, commission=0.0, ts_event=ts + timedelta(seconds=2),
                    ))
            n += orders_per_mark
            yield from orders
            yield from fills
            nav = 100_000.0 * (1 + 0.0003 * day) + 1_000 * a
            held = SYMBOLS[(day + a) % 4 : (day + a) % 4 + 6]
            yield NavSnapshot(run_id=RUN_ID, account=account, ts_event=ts, nav=nav,
                              cash=nav * 0.02, gross_exposure=nav * 0.98, leverage=0.98)
            for sym in held:
                value = nav * 0.98 / len(held)
                yield Position(run_id=RUN_ID, account=account, ts_event=ts, symbol=sym,
                               qty=value / 100.0, avg_price=98.0, price=100.0, value=value)
            if (day * len(ACCOUNTS) + a) * N_EVENTS % N_MARKS < N_EVENTS:  # N_EVENTS in all
                sev = ("INFO", "INFO", "INFO", "WARN", "ERROR")[day % 5]
                yield Event(ts_event=ts, subsystem="engine", type="cycle", severity=sev,
                            run_id=RUN_ID, account=account, message=f"cycle {day} ({sev})",
                            details={"orders": orders_per_mark, "day": day})


def _journal_ok(db: Path) -> bool:
    import sqlite3

    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT note FROM runs WHERE run_id = ?", (RUN_ID,)).fetchone()
    except sqlite3.Error:
        return False
    return bool(row) and row[0] == SHAPE


def build_journal(db: Path, rebuild: bool) -> None:
    if not rebuild and _journal_ok(db):
        print(f"journal: reusing {db}")
        return
    from botctl.store import Store

    db.parent.mkdir(parents=True, exist_ok=True)
    building = db.with_name(db.name + ".building")
    for p in (db, building):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{p}{suffix}").unlink(missing_ok=True)
    clock = time.perf_counter()
    print(f"journal: building {db} ...", flush=True)
    records = _records()
    run = next(records)
    with Store.open(building, durable=False) as store:
        store.insert(run)  # first, so a run row exists before its orders (foreign key)
        store.insert_many(records)
    # Built under another name and renamed when complete: a half-built file is never reused.
    os.replace(building, db)
    print(f"journal: built in {time.perf_counter() - clock:.1f} s")


def _counts(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        parts = [f"{t}={conn.execute(f'SELECT count(*) FROM {t}').fetchone()[0]:,}"
                 for t in ("runs", "orders", "fills", "nav", "positions", "events")]
    return ", ".join(parts)


def wall(cmd: list[str], runs: int) -> tuple[list[float], subprocess.CompletedProcess]:
    subprocess.run(cmd, capture_output=True, cwd=ROOT)  # warm-up: page cache, .pyc files
    times = []
    for _ in range(runs):
        clock = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - clock)
    return times, done


def _fmt(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"median {statistics.median(ms):6.1f} ms  (min {min(ms):.1f}, max {max(ms):.1f}, n={len(ms)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path,
                    default=Path(tempfile.gettempdir()) / "botctl-status-bench" / "journal.db")
    ap.add_argument("--rebuild", action="store_true", help="Rebuild the journal even if cached.")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    build_journal(args.db, args.rebuild)
    size = sum(Path(f"{args.db}{s}").stat().st_size for s in ("", "-wal")
               if Path(f"{args.db}{s}").exists())
    print(f"journal: {size / 2**20:.1f} MiB; {_counts(args.db)}")
    one, five, _ = os.getloadavg()
    print(f"machine: load average {one:.2f} {five:.2f} on {os.cpu_count()} cores")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # With no .pyc cache every run compiles botctl's own modules from source (about 0.1 s
        # here); an installed botctl has its cache, so that is not what a user waits for.
        print("note: PYTHONDONTWRITEBYTECODE is set, so each run compiles botctl from source; "
              "unset it to time what an installed botctl does")

    base = [sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(args.db), "status"]
    py, _ = wall([sys.executable, "-c", "pass"], args.runs)
    print(f"{'python -c pass (interpreter start-up)':<40} {_fmt(py)}")
    for label, cmd in (("botctl status --json", [*base, "--json"]), ("botctl status", base)):
        times, done = wall(cmd, args.runs)
        note = "" if done.returncode == 0 else f"  [exit {done.returncode}: {done.stderr.decode().strip()[:200]}]"
        print(f"{label:<40} {_fmt(times)}  output {len(done.stdout):,} bytes{note}")


if __name__ == "__main__":
    main()
