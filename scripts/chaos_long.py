"""The long chaos run: the same seeded machinery as tests/chaos (tests/chaos/chaos_support.py),
with counts too large for CI. Prints the figures; exits 1 if any figure that must be zero is not.

    .venv/bin/python scripts/chaos_long.py                  # N = 200 crash rounds, and the rest
    .venv/bin/python scripts/chaos_long.py --quick          # a smoke run, under a minute
    .venv/bin/python scripts/chaos_long.py --rounds 500 --seed 7 --fault-sessions 40 --fault-rate 0.3

Sections (each can be skipped with --skip NAME):
  crash    N rounds, one XNYS session each: `botctl run --once` or the scheduled loop `botctl run`
           against the fake Alpaca is SIGKILLed at a seeded random moment of its trading cycle
           (mostly just after an order reached the broker, with the send made slow or
           ambiguous), then restarted; after every round the journal is compared with the broker.
  faults   the real scheduled loop over S sessions with broker faults (429, 500, 503, 504 after
           acceptance, timeouts, dropped connections, partial fills, rejections) at the given
           rate on every trading request, then faults stop; risk limits checked throughout.
  data     the same loop with faults on the market-data endpoint instead.
  replay   `botctl run --replay` SIGKILLed / SIGTERMed mid-write M times.
  hang     (not in --quick) a broker that never answers, with botctl's real 10 s timeouts: how
           long until the account is given up, and the other account trades meanwhile.
  scenarios (not in --quick) the other tests/chaos files (accounts and clocks, data faults,
           database faults, bad input, secrets) in a pytest subprocess, the Hypothesis
           properties with --fuzz-scale times their CI examples; prints the counts.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "chaos"))
sys.path.insert(0, str(ROOT / "tests"))

import chaos_support as cs  # noqa: E402

ZERO = "must be 0"


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def show(rows: list[tuple[str, object, str]]) -> None:
    for name, value, note in rows:
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        print(f"  {name:<38} {text:>12}  {note}", flush=True)


def first_day_for(rounds: int) -> date:
    """Sessions whose bars exist in the bundled data (to 2025-12-24), with six months of
    history for every symbol of the plan (XLC starts mid-2018)."""
    if rounds <= 440:
        return date(2024, 3, 4)
    from botctl.adapters.calendar import sessions

    days = [s.day for s in sessions(date(2019, 1, 2), date(2025, 12, 23))]
    if rounds > len(days):
        raise SystemExit(f"at most {len(days)} crash rounds fit in the bundled data")
    return days[-rounds]


def run_crash(rounds: int, seed: int, verbose: bool) -> dict:
    section(f"process crashes: {rounds} SIGKILL rounds (seed {seed})")
    clock = {"now": None}
    with tempfile.TemporaryDirectory(prefix="chaos-crash-") as tmp, cs.new_chaos_fake(now=lambda: clock["now"]) as fake:
        ws = cs.crash_workspace(Path(tmp), fake.url)
        started = time.monotonic()

        def progress(line: str) -> None:
            done = line.split(" ", 2)[1]
            if verbose or "PROBLEMS" in line or "restart exit 0" not in line:
                print("  " + line, flush=True)
            elif int(done) % 10 == 9:
                rate = (time.monotonic() - started) / (int(done) + 1)
                print(f"  ... {int(done) + 1}/{rounds} rounds, {rate:.1f}s per round", flush=True)

        f = cs.crash_rounds(ws, fake, clock, rounds=rounds, seed=seed, first_day=first_day_for(rounds),
                            progress=progress)
    show([
        ("rounds run", f.rounds, ""),
        ("  processes SIGKILLed", f.kills, "(the others finished before their kill)"),
        ("  killed after an order reached broker", f.kills_mid_send, ""),
        ("  of which the scheduled loop", f.loop_rounds, "(rounds whose process was `botctl run`)"),
        ("  orders left open by a killed process", f.left_open, "(resolved by the restart)"),
        ("restarts that exited 0", f.restarts_ok, f"must be {f.rounds}"),
        ("orders at the broker", f.broker_orders, ""),
        ("duplicate orders at the broker", f.duplicates, ZERO),
        ("orders lost", f.lost, ZERO),
        ("fill mismatches journal/broker", f.fill_mismatches, ZERO),
        ("position mismatches journal/broker", f.position_mismatches, ZERO),
        ("rounds not on the plan's targets", f.off_target, ZERO),
        ("elapsed (s)", f.elapsed_s, f"{f.elapsed_s / max(f.rounds, 1):.1f}s per round"),
    ])
    return {"failures": f.failures(), "rounds": f.rounds, "kills": f.kills, "kills_mid_send": f.kills_mid_send,
            "duplicates": f.duplicates, "lost": f.lost, "fill_mismatches": f.fill_mismatches,
            "position_mismatches": f.position_mismatches, "off_target": f.off_target, "elapsed_s": f.elapsed_s}


def run_faults(sessions: int, rate: float, seed: int, *, data: bool) -> dict:
    what = "market-data faults" if data else "broker faults"
    section(f"{what}: {sessions} sessions at rate {rate:g} (seed {seed}), then faults stop")
    kwargs = {"kinds": ("500", "503", "drop", "429", "timeout")} if data else {}
    with tempfile.TemporaryDirectory(prefix="chaos-faults-") as tmp:
        # with market-data faults, the endpoint is also down for one whole session mid-run
        run = cs.faulted_loop(Path(tmp), seed, sessions=sessions, rate=rate,
                              paths=cs.DATA_PATHS if data else cs.TRADING_PATHS,
                              outage=sessions // 2 if data else None, **kwargs)
        ws, fake, days, loop = run["ws"], run["fake"], run["days"], run["loop"]
        try:
            tried = {line.split(" ", 1)[0] for line in cs.cycle_lines(loop["echo"])}
            failed = {line.split(" ", 1)[0] for line in cs.cycle_lines(loop["echo"]) if ": failed: " in line}
            ordered = {o["created_at"][:10] for o in fake.orders()}
            book = cs.ledger(ws, fake, "alp")
            breaches = cs.limit_breaches(ws, fake, "alp") + run["exposures"]
            off = cs.target_error(fake, days[-1].day)
            events = Counter(e[0] for e in ws.events("alp") if e[1] != "INFO")
        finally:
            fake.stop()
    missed = len({str(s.day) for s in days} - tried)
    rows = [
        ("sessions (faulted + 1 clean)", len(days), ""),
        ("faults injected", sum(run["injected"].values()),
         ", ".join(f"{k} {n}" for k, n in sorted(run["injected"].items()))),
        ("loop ended", loop["status"], "must be stopped (it never died)"),
        ("sessions the loop did not try", missed, ZERO),
        ("sessions whose cycle failed", len(failed), "(an ERROR event each)"
         + (f"; the outage on {run['outage']} must be one" if data else "")),
        ("sessions traded on failed data", len(failed & ordered), ZERO),
        ("orders at the broker", book.broker_orders, ""),
        ("duplicate orders at the broker", book.duplicates, ZERO),
        ("orders lost (after the restart)", book.lost, ZERO),
        ("fill mismatches journal/broker", book.fill_mismatches, ZERO),
        ("position mismatches journal/broker", book.position_mismatches, ZERO),
        ("risk limit breaches", len(breaches), ZERO),
        ("off the plan's targets at the end", len(off), ZERO),
        ("WARN+ events", sum(events.values()), ", ".join(f"{k} {n}" for k, n in sorted(events.items()))),
        ("elapsed (s)", run["elapsed_s"], ""),
    ]
    show(rows)
    for line in book.problems + breaches + off:
        print("  PROBLEM: " + line)
    failures = (missed + book.duplicates + book.lost + book.fill_mismatches + book.position_mismatches
                + len(breaches) + len(off) + (loop["status"] != "stopped")
                + (len(failed & ordered) + (run["outage"] not in failed) if data else 0))
    return {"failures": failures, "faults": dict(run["injected"]), "failed_sessions": len(failed),
            "duplicates": book.duplicates, "lost": book.lost, "breaches": len(breaches), "off_target": len(off)}


def run_replay_kills(count: int, seed: int) -> dict:
    section(f"signals mid-write: {count} replays SIGKILLed / SIGTERMed (seed {seed})")
    rng = random.Random(seed)
    outcomes = Counter()
    bad = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-replay-") as tmp:
        for i in range(count):
            sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
            kill = cs.replay_kill(Path(tmp) / f"journal-{i}.db", sig, rng)
            expected = (-signal.SIGKILL, "running") if sig == signal.SIGKILL else (0, "stopped")
            ok = (kill.integrity == "ok" and not kill.problems and not kill.lost and cs.no_traceback(kill.stderr)
                  and (kill.returncode, kill.run_status) == expected)
            outcomes[f"{kill.signal} -> exit {kill.returncode}, run {kill.run_status}"] += 1
            if not ok:
                bad += 1
                print(f"  PROBLEM round {i}: {kill}")
    show([("replays signalled", count, ", ".join(f"{k}: {n}" for k, n in sorted(outcomes.items()))),
          ("inconsistent or lossy journals", bad, ZERO),
          ("elapsed (s)", time.monotonic() - started, "")])
    return {"failures": bad, "outcomes": dict(outcomes)}


def run_hang() -> dict:
    section("a broker that never answers (botctl's real 10 s timeouts, `run --once` subprocess)")
    with tempfile.TemporaryDirectory(prefix="chaos-hang-") as tmp:
        clock = {"now": cs.ny(date(2024, 3, 4), 10, 30)}
        with cs.new_chaos_fake(now=lambda: clock["now"]) as good, cs.new_chaos_fake(now=lambda: clock["now"]) as hung:
            hung.inject("timeout", method="*", path="/v2/", count=None, seconds=30)
            ws = cs.make_workspace(Path(tmp), BOTCTL_CLOCK=cs.clock_spec(clock["now"]))
            ws.write_accounts(cs.alpaca_account("good", good.url), cs.alpaca_account("hung", hung.url))
            started = time.monotonic()
            proc = ws.run_once(timeout=900)
            took = time.monotonic() - started
            events = [e for e in ws.events("hung") if e[1] == "ERROR"]
            traded = bool(good.orders()) and not cs.target_error(good, date(2024, 3, 4))
    show([("`run --once` exit code", proc.returncode, ""),
          ("seconds until done", took, "(reconcile of the hung account: 5 attempts x 10 s + backoff)"),
          ("hung account's error", events[0][2][:60] if events else "-", ""),
          ("the other account traded on target", traded, "must be True")])
    return {"failures": int(not traded or not events or proc.returncode not in (0, 1)), "seconds": took}


SCENARIOS = {  # the rest of tests/chaos, run whole: (what it covers, file)
    "accounts": ("revoked keys, a hung broker, clock jumps, holiday, half day", "test_chaos_accounts.py"),
    "data": ("missing symbol, NaN/zero prices, collar, stale/truncated cache", "test_chaos_data.py"),
    "database": ("locked, read-only, full disk, max_page_count, corrupt", "test_chaos_database.py"),
    "bad input": ("fuzzed configs, malformed command lines, signals", "test_chaos_bad_input.py"),
    "secrets": ("keys looked for in every output, file and the dump", "test_chaos_secrets.py"),
}


def run_scenarios(scale: float, seed: int) -> dict:
    """The scenario tests of tests/chaos in a pytest subprocess, the Hypothesis properties
    with `scale` times their CI examples; counts read from its JUnit report and statistics."""
    import os
    import re
    import subprocess
    import xml.etree.ElementTree as ET

    section(f"scenarios: the other tests/chaos files, Hypothesis examples x{scale:g}")
    with tempfile.TemporaryDirectory(prefix="chaos-scenarios-") as tmp:
        report = Path(tmp) / "junit.xml"
        env = {**os.environ, "BOTCTL_CHAOS_FUZZ_SCALE": str(scale), "BOTCTL_CHAOS_SEED": str(seed)}
        files = [str(ROOT / "tests" / "chaos" / f) for _, f in SCENARIOS.values()]
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}",
                               "--hypothesis-show-statistics", *files], cwd=ROOT, env=env, capture_output=True, text=True)
        cases = ET.parse(report).getroot().iter("testcase") if report.exists() else []
        counts = {name: Counter() for name in SCENARIOS}
        for case in cases:
            name = next(n for n, (_, f) in SCENARIOS.items() if case.get("classname", "").endswith(f[:-3]))
            outcome = "failed" if case.find("failure") is not None or case.find("error") is not None else (
                "skipped" if case.find("skipped") is not None else "passed")
            counts[name][outcome] += 1
    # Hypothesis's statistics: "- 120 passing, 0 failing, and 3 invalid test cases" per phase
    phases = re.findall(r"(\d+) passing, (\d+) failing", proc.stdout)
    examples, failing = sum(int(p) for p, _ in phases), sum(int(f) for _, f in phases)
    rows = [(name, f"{c['passed']}/{sum(c.values())}", f"passed ({c['failed']} failed, {c['skipped']} skipped): "
             + SCENARIOS[name][0]) for name, c in counts.items()]
    rows.append(("Hypothesis examples (bad input)", examples, f"passing; {failing} failing (must be 0)"))
    show(rows)
    failed = sum(c["failed"] for c in counts.values())
    if proc.returncode and not failed:  # pytest failed outside any test (collection, report)
        print(proc.stdout[-2000:] + proc.stderr[-2000:])
        failed = 1
    return {"failures": failed + failing, "examples": examples,
            "scenarios": {name: dict(c) for name, c in counts.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="SIGKILL rounds (default 200)")
    parser.add_argument("--seed", type=int, default=20240301, help="base seed of every random choice")
    parser.add_argument("--fault-sessions", type=int, default=20, help="faulted sessions of the loop (default 20)")
    parser.add_argument("--fault-rate", type=float, default=0.25, help="fault probability per request (default 0.25)")
    parser.add_argument("--data-sessions", type=int, default=10, help="sessions with market-data faults (default 10)")
    parser.add_argument("--data-rate", type=float, default=0.05, help="fault probability per data request")
    parser.add_argument("--replays", type=int, default=20, help="replays signalled mid-write (default 20)")
    parser.add_argument("--fuzz-scale", type=float, default=3.0,
                        help="Hypothesis examples of the bad-input properties, times CI's (default 3)")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run under a minute")
    parser.add_argument("--skip", action="append", default=[], choices=["crash", "faults", "data", "replay", "hang", "scenarios"])
    parser.add_argument("--verbose", action="store_true", help="print every crash round")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.fault_sessions, args.data_sessions, args.replays = 3, 3, 2, 2
        args.skip += ["hang", "scenarios"]
    started = time.monotonic()
    figures = {}
    if "crash" not in args.skip:
        figures["crash"] = run_crash(args.rounds, args.seed, args.verbose)
    if "faults" not in args.skip:
        figures["faults"] = run_faults(args.fault_sessions, args.fault_rate, args.seed, data=False)
    if "data" not in args.skip:
        figures["data"] = run_faults(args.data_sessions, args.data_rate, args.seed + 1, data=True)
    if "replay" not in args.skip:
        figures["replay"] = run_replay_kills(args.replays, args.seed)
    if "hang" not in args.skip:
        figures["hang"] = run_hang()
    if "scenarios" not in args.skip:
        figures["scenarios"] = run_scenarios(args.fuzz_scale, args.seed)
    failures = sum(f["failures"] for f in figures.values())
    section("summary")
    show([(name, f["failures"], "failures (must be 0)") for name, f in figures.items()]
         + [("total elapsed (s)", time.monotonic() - started, "")])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    print("\nOK: every figure that must be 0 is 0" if not failures else f"\nFAILED: {failures} problem(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
