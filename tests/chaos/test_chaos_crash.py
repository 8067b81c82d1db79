"""Process crashes.

1. `botctl run --once` and the scheduled loop `botctl run`, against the fake Alpaca, are
   SIGKILLed at seeded random moments of a trading cycle (most often just after an order
   reached the broker, with that send made slow or ambiguous), then restarted, one XNYS
   session per round: no order is placed twice, none is lost, the journal's fills and
   positions equal the broker's, and the account ends each round on the plan's targets
   (computed independently of botctl). The long version (N >= 200) is scripts/chaos_long.py.
2. The shipped signal book (account signals-sim, SectorBreakoutBook_v1, on the simulated
   broker whose cash and positions are the journal's) is traded one `botctl run --once` per
   session; in some sessions that process is SIGKILLed inside its cycle, mid-position, and
   started again: its journal ends exactly as the uninterrupted one's (orders, fills,
   position state, book events, NAV), nothing bought twice.
3. `botctl run --replay` is SIGKILLed or SIGTERMed mid-write: the journal stays consistent
   (integrity, every fill has its order, every mark its positions), nothing committed is
   lost, `status` and `tail` read it and say what happened, and the next run goes on.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess

import pytest
from datetime import date

from chaos_support import (
    REPO,
    book_journal,
    book_kill_mid_cycle,
    book_run_here,
    book_workspace,
    botctl_argv,
    clean_env,
    consistency,
    crash_rounds,
    crash_workspace,
    differences,
    integrity,
    new_chaos_fake,
    no_traceback,
    ny,
    replay_kill,
    sessions_from,
)

ROUNDS = int(os.environ.get("BOTCTL_CHAOS_CRASH_ROUNDS", "5"))


@pytest.mark.timeout(60 + 30 * ROUNDS)
def test_sigkill_rounds_place_nothing_twice_lose_nothing_and_end_on_target(tmp_path, seed):
    clock = {"now": None}
    with new_chaos_fake(now=lambda: clock["now"]) as fake:
        ws = crash_workspace(tmp_path, fake.url)
        figures = crash_rounds(ws, fake, clock, rounds=ROUNDS, seed=seed)
    context = f"seed {seed}\n" + "\n".join(figures.log)
    print(context)
    assert figures.rounds == ROUNDS
    assert figures.restarts_ok == ROUNDS, context
    assert figures.broker_orders >= 2 * ROUNDS, context  # every session traded
    assert figures.duplicates == 0, context
    assert figures.lost == 0, context
    assert figures.fill_mismatches == 0, context
    assert figures.position_mismatches == 0, context
    assert figures.off_target == 0, context
    # The kills really landed inside trading cycles, not only before or after them.
    assert figures.kills >= ROUNDS // 2 and figures.kills_mid_send >= 1, context


# --- SIGKILL a signal book's paper cycle mid-position ---------------------------------------------

# 2020-02-20..28: four entries, then stops, a trailing stop, new entries and a regime exit as
# the market falls; the cycles with orders are where the kills land.
BOOK_SESSIONS = [s.day for s in sessions_from(date(2020, 2, 20), 7)]


@pytest.mark.timeout(180)
def test_a_signal_book_killed_mid_cycle_ends_as_if_never_killed(tmp_path, seed):
    rng = random.Random(seed)
    reference = book_workspace(tmp_path / "reference")
    for day in BOOK_SESSIONS:
        book_run_here(reference, ny(day, 10, 30))
    expected = book_journal(reference.db)
    reasons = {o[6] for o in expected["orders"]}
    assert {"entry", "stop_loss", "trailing_stop"} <= reasons, reasons  # the span trades entries and exits
    by_day: dict[date, int] = {}
    for order in expected["orders"]:
        day = next(d for d in BOOK_SESSIONS if f"-{d:%Y%m%d}T" in order[0])
        by_day[day] = by_day.get(day, 0) + 1
    # Killed in three cycles with orders: the first (no mark yet), one right after its orders
    # are committed, one after some of its fills and before its mark.
    busy = sorted(by_day)
    kills = {busy[0]: rng.randint(0, by_day[busy[0]]), busy[1]: 0,
             busy[2]: rng.randint(1, by_day[busy[2]])}
    crashed = book_workspace(tmp_path / "crashed")
    log = []
    for day in BOOK_SESSIONS:
        at = ny(day, 10, 30)
        if day not in kills:
            book_run_here(crashed, at)
            continue
        what = book_kill_mid_cycle(crashed, at, kills[day], pause=rng.uniform(0.0, 0.05))
        restart = crashed.run_once("--account", "signals-sim")
        log.append(f"{day}: {what}; restart exit {restart.returncode}")
        assert restart.returncode == 0 and no_traceback(restart.stderr), restart.stderr
    context = f"seed {seed}\n" + "\n".join(log)
    assert sum("killed" in line for line in log) >= 2, context  # the kills landed inside cycles
    got = book_journal(crashed.db)
    assert integrity(crashed.db) == "ok" and consistency(crashed.db) == [], context
    for part in ("orders", "fills", "position_state", "book_events", "nav"):
        assert differences(expected[part], got[part], part) == [], context
    bought = [f[0] for f in got["fills"] if f[2] == "buy"]
    assert len(bought) == len(set(bought)), context  # nothing bought twice
    assert got["warnings"] == expected["warnings"], context  # a restart raises no alarm of its own


# --- SIGKILL / SIGTERM while a replay writes the journal ---------------------------------------


def _botctl(db, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(botctl_argv("--config-dir", str(REPO), "--db", str(db), *args),
                          env=clean_env(), capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_signal_mid_replay_leaves_a_consistent_journal_that_status_explains(tmp_path, seed, sig):
    db = tmp_path / "journal.db"
    kill = replay_kill(db, sig, random.Random(seed))
    assert no_traceback(kill.stderr), kill.stderr
    assert kill.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 0), kill
    assert kill.integrity == "ok" and kill.problems == [] and kill.lost == {}, kill
    assert kill.run_status == ("running" if sig == signal.SIGKILL else "stopped"), kill

    status = _botctl(db, "status", "--json")
    assert no_traceback(status.stdout + status.stderr), status.stderr
    body = json.loads(status.stdout)
    if sig == signal.SIGKILL:
        # the run is recorded as running, its process is gone: unhealthy, exit 1, and why
        assert status.returncode == 1, status.stdout
        assert body["healthy"] is False and "not running" in body["state"], body["state"]
    else:
        assert status.returncode == 0, status.stderr
        assert body["run"]["status"] == "stopped" and body["state"] == "last run stopped", body
        events = _botctl(db, "tail", "--json", "--kind", "events", "-n", "5")
        assert any(json.loads(line)["type"] == "run.stopped" for line in events.stdout.splitlines()), events.stdout
    assert set(body["accounts"]) >= {"rotation-sim", "adaptive-sim"}
    assert all(a["nav"] is not None for a in body["accounts"].values())
    tailed = _botctl(db, "tail", "--json", "--kind", "orders", "-n", "3")
    assert tailed.returncode == 0 and len(tailed.stdout.splitlines()) == 3, tailed.stderr

    # The journal takes the next run as if nothing happened.
    again = _botctl(db, "run", "--replay", "2024-01-02:2024-02-29")
    assert again.returncode == 0, again.stderr
    assert integrity(db) == "ok" and consistency(db) == []
