"""The journal's integrity against processes an operator can start beside each other: one
trading process per journal (a second is refused at once, a SIGKILLed one leaves no lock),
backtests and replays never feed a paper account's state, status and kill find the trading
run behind newer rows, and kill is recorded beside a replay writing at full speed. Every
process here is a real `python -m botctl` on the shipped config (two simulated paper accounts).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from chaos_support import REPO, botctl_argv, clean_env, consistency, integrity, no_traceback, spawn_replay, wait_for_rows

# Friday 2024-03-01 10:30 New York: the market is open and every model is due (first session of March).
OPEN_CLOCK = "2024-03-01T15:30:00Z*1"
NEXT_DAY_CLOCK = "2024-03-04T15:30:00Z*1"


def cli(db: Path, *args: str, clock: str | None = OPEN_CLOCK, timeout: float = 120) -> subprocess.CompletedProcess:
    env = clean_env(**({"BOTCTL_CLOCK": clock} if clock else {}))
    return subprocess.run(botctl_argv("--config-dir", str(REPO), "--db", str(db), *args), env=env,
                          capture_output=True, text=True, timeout=timeout)


def spawn(db: Path, *args: str, clock: str = OPEN_CLOCK) -> subprocess.Popen:
    return subprocess.Popen(botctl_argv("--config-dir", str(REPO), "--db", str(db), *args),
                            env=clean_env(BOTCTL_CLOCK=clock), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


def positions(db: Path, account: str, kinds: tuple[str, ...] = ("paper", "manual")) -> dict[str, float]:
    """The account's holdings at its newest mark of a run of `kinds`."""
    marks = ", ".join("?" * len(kinds))
    row = query(db, f"SELECT n.run_id, n.ts_event FROM nav n JOIN runs r USING (run_id) WHERE n.account = ? "
                    f"AND r.kind IN ({marks}) ORDER BY n.id DESC LIMIT 1", (account, *kinds))
    if not row:
        return {}
    return dict(query(db, "SELECT symbol, qty FROM positions WHERE account = ? AND run_id = ? AND ts_event = ?",
                      (account, *row[0])))


def refused(result: subprocess.CompletedProcess, holder_pid: int) -> None:
    assert result.returncode == 5, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and no_traceback(result.stderr), result.stderr
    assert f"in use by pid {holder_pid} (`botctl " in lines[0] and " run`, since " in lines[0], lines[0]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


@pytest.mark.timeout(180)
def test_a_second_trading_process_is_refused_and_kill_flatten_empties_the_running_sim_account(tmp_path):
    db = tmp_path / "botctl.db"
    loop = spawn(db, "run")
    try:
        wait_for_rows(db, loop, "nav", 3)  # the three accounts traded and marked by the running loop
        held = {a: positions(db, a) for a in ("rotation-sim", "adaptive-sim")}
        assert all(held.values()), held
        orders = query(db, "SELECT count(*) FROM orders")
        for args in (["run", "--once", "--yes"], ["run", "--replay", "2024-01-02:2024-01-31"]):
            refused(cli(db, *args), loop.pid)
        assert query(db, "SELECT count(*) FROM orders") == orders  # the refused wrote nothing
        assert query(db, "SELECT kind, status FROM runs") == [("paper", "running")]
        # Readers never wait for the lock.
        status = cli(db, "status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["running"] is True, status.stderr

        # The emergency stop: the running loop acts, and the simulated account is really flat.
        kill = cli(db, "kill", "--flatten", "--json", "--timeout", "30")
        assert kill.returncode == 0, kill.stderr
        body = json.loads(kill.stdout)
        assert body["running"] is True and body["pid"] == loop.pid and all(body["acknowledged"].values())
        for account, symbols in held.items():
            assert positions(db, account, ("paper",)) == {}, account
            sold = query(db, "SELECT symbol, qty FROM orders WHERE account = ? AND reason = 'flatten' AND status = 'filled'",
                         (account,))
            assert dict(sold) == pytest.approx(symbols)
    finally:
        stop(loop)
    # SIGKILLed: the lock died with it. The next trading process is not refused (halted: no trade).
    again = cli(db, "run", "--once")
    assert again.returncode == 0, again.stderr
    assert "in use" not in again.stderr and "halted" in again.stdout
    assert integrity(db) == "ok" and consistency(db) == []


@pytest.mark.timeout(180)
def test_two_run_once_at_the_same_moment_never_both_trade(tmp_path):
    db = tmp_path / "botctl.db"
    procs = [spawn(db, "run", "--once", "--yes") for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 5]), results  # one after the other is fine; never both at once
    for code, out, err in results:
        assert no_traceback(out + err) and "UNIQUE" not in err, err
    assert integrity(db) == "ok" and consistency(db) == []
    # No order with fills is anything but filled; the second run (if any) only finished the first's cycle.
    assert query(db, "SELECT count(*) FROM orders o WHERE status != 'filled' AND EXISTS "
                     "(SELECT 1 FROM fills f WHERE f.client_order_id = o.client_order_id)") == [(0,)]
    assert query(db, "SELECT count(*) FROM (SELECT client_order_id FROM orders GROUP BY client_order_id HAVING count(*) > 1)") \
        == [(0,)]


@pytest.mark.timeout(240)
def test_backtests_and_replays_never_feed_the_paper_account(tmp_path):
    db = tmp_path / "botctl.db"
    first = cli(db, "run", "--once", "--yes")
    assert first.returncode == 0, first.stderr
    paper = {a: positions(db, a) for a in ("rotation-sim", "adaptive-sim")}
    assert all(paper.values())
    journal = {t: query(db, f"SELECT count(*) FROM {t}") for t in ("runs", "orders", "fills", "nav", "positions")}

    backtest = cli(db, "backtest", "--start", "2020-01-01", "--end", "2020-03-31", "--json", clock=None)
    assert backtest.returncode == 0, backtest.stderr
    assert {t: query(db, f"SELECT count(*) FROM {t}") for t in journal} == journal  # not a row in the journal
    assert query(tmp_path / "botctl-backtests.db", "SELECT kind FROM runs") == [("backtest",)]

    replay = cli(db, "run", "--replay", "2019-01-02:2019-02-28", clock=None)
    assert replay.returncode == 0, replay.stderr
    assert positions(db, "rotation-sim", ("replay",))  # the replay's own book, in the journal

    # The next paper run starts from the paper book: no mismatch, no sale of what it never bought.
    second = cli(db, "run", "--once", "--yes", clock=NEXT_DAY_CLOCK)
    assert second.returncode == 0, second.stderr
    run_id = query(db, "SELECT run_id FROM runs WHERE kind = 'paper' ORDER BY id DESC LIMIT 1")[0][0]
    assert query(db, "SELECT count(*) FROM events WHERE run_id = ? AND type = 'reconcile.position_mismatch'",
                 (run_id,)) == [(0,)]
    for account, held in paper.items():
        for symbol, qty in query(db, "SELECT symbol, qty FROM orders WHERE run_id = ? AND account = ? AND side = 'sell'",
                                 (run_id, account)):
            assert qty <= held.get(symbol, 0.0) + 1e-9, (account, symbol, qty, held)

    # kill --flatten with no bot sells the paper book, at paper prices, and nothing of the replay's.
    now_held = {a: positions(db, a) for a in paper}
    marked = dict(query(db, "SELECT symbol, price FROM positions WHERE run_id = ?", (run_id,)))
    kill = cli(db, "kill", "--flatten", "--json", clock=None)
    assert kill.returncode == 0, kill.stderr
    assert json.loads(kill.stdout)["running"] is False
    for account, held in now_held.items():
        sold = query(db, "SELECT o.symbol, o.qty, o.ref_price FROM orders o JOIN runs r USING (run_id) "
                         "WHERE r.kind = 'manual' AND o.account = ?", (account,))
        assert {s: q for s, q, _ in sold} == pytest.approx(held)
        assert all(price == pytest.approx(marked[s]) for s, _, price in sold)
        assert positions(db, account) == {}


def add_backtest_row(db: Path) -> None:
    """A newer non-trading row in the runs table, as an older botctl left backtests in the journal."""
    from datetime import datetime, timezone

    from botctl.records import Run
    from botctl.store import Store

    now = datetime.now(timezone.utc)
    with Store.open(db, create=False) as store:
        store.upsert_run(Run(run_id=f"bt-{time.monotonic_ns()}", kind="backtest", plan_id="p", started_at=now,
                             status="finished", ended_at=now))


@pytest.mark.timeout(180)
def test_status_and_kill_find_the_trading_run_behind_newer_rows(tmp_path):
    db = tmp_path / "botctl.db"
    replay = spawn_replay(db, REPO, "2021-01-01:2021-12-31", "--speed", "86400")
    try:
        wait_for_rows(db, replay, "nav", 2)
        add_backtest_row(db)
        status = cli(db, "status", "--json", clock=None)
        assert status.returncode == 0 and json.loads(status.stdout)["running"] is True, status.stdout
        assert json.loads(status.stdout)["run"]["kind"] == "replay"
        kill = cli(db, "kill", "--json", "--timeout", "30", clock=None)
        assert kill.returncode == 0, kill.stderr
        assert json.loads(kill.stdout)["pid"] == replay.pid  # the replay acted, nothing acted beside it
        assert query(db, "SELECT count(*) FROM runs WHERE kind = 'manual'") == [(0,)]
    finally:
        stop(replay)
    add_backtest_row(db)
    crashed = cli(db, "status", clock=None)
    assert crashed.returncode == 1 and "is not running" in crashed.stdout + crashed.stderr, crashed.stdout


@pytest.mark.timeout(180)
def test_kill_is_recorded_and_acted_on_beside_a_full_speed_replay(tmp_path):
    db = tmp_path / "botctl.db"
    replay = spawn_replay(db)  # ten years as fast as it goes: back-to-back write transactions
    try:
        wait_for_rows(db, replay, "orders", 1)
        kill = cli(db, "kill", "--flatten", "--json", "--timeout", "30", clock=None)
        assert kill.returncode == 0, kill.stderr
        assert all(json.loads(kill.stdout)["acknowledged"].values())
        assert query(db, "SELECT count(*) FROM events WHERE type = 'kill.flatten'") == [(3,)]
        replay.send_signal(signal.SIGTERM)
        assert replay.wait(timeout=60) == 0
    finally:
        stop(replay)
    assert integrity(db) == "ok" and consistency(db) == []
