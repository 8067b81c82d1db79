"""Process crashes.

1. `botctl run --once` and the scheduled loop `botctl run`, against the fake Alpaca, are
   SIGKILLed at seeded random moments of a trading cycle (most often just after an order
   reached the broker, with that send made slow or ambiguous), then restarted, one XNYS
   session per round: no order is placed twice, none is lost, the journal's fills and
   positions equal the broker's, and the account ends each round on the plan's targets
   (computed independently of botctl). The long version (N >= 200) is scripts/chaos_long.py.
2. `botctl run --replay` is SIGKILLed or SIGTERMed mid-write: the journal stays consistent
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
from chaos_support import (
    REPO,
    botctl_argv,
    clean_env,
    consistency,
    crash_rounds,
    crash_workspace,
    integrity,
    new_chaos_fake,
    no_traceback,
    replay_kill,
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
