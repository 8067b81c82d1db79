"""Parity, leg (c): the paper loop (runtime.trading.Trader, the scheduler `botctl run` runs) on a
simulated clock against the loopback fake Alpaca server, through the real alpaca-py clients,
places the same orders at the same prices and marks the same NAV as `botctl backtest` of the
same plan over the same bars, a day of suspect data included.

The fake is told to fill like the simulator's `fill: open` (fill_model="open"): until a
session's close it knows only the previous close, and market orders fill at the session's
adjusted open. The backtest's account has the same fill model, without slippage or commission
(a real broker charges neither here)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
NEW_YORK = ZoneInfo("America/New_York")
START, END = date(2020, 1, 2), date(2020, 5, 29)
SUSPECT_DAY = date(2020, 3, 31)  # the bar before April's rebalance
KEY, SECRET = "PKPARITYKEY0000000001", "parity-secret-value-000000000000000001"
ACCOUNT = "parity"
MODELS = "[SectorRotationModel_v1, SectorRotationBear_v1]"
# Events only the scheduler of a paper run records around the cycle (the run, the market's
# hours, a retried or owed cycle): the cycle's own events must agree.
LOOP_ONLY = ("run.", "market.", "cycle.", "reconcile", "mark.", "live.", "clock.")


def accounts_yaml(broker_block: str, models: str) -> str:
    return f"""accounts:
  {ACCOUNT}:
{broker_block}
    mode: paper
    starting_cash: 100000
    models: {models}
    sim: {{fill: open, commission_bps: 0, slippage_bps: 0, margin: 2.0, borrow_rate: 0.0}}
health: {{host: 127.0.0.1, port: 0}}
"""


class JumpClock:
    """A simulated clock that moves itself when the loop sleeps: `real_seconds` jumps to the
    instant slept to and answers 0, so a trading day passes in milliseconds. Past `end` it
    stops the trader."""

    speed = 1.0

    def __init__(self, start: datetime, end: datetime, actions: tuple = (), db: Path | None = None) -> None:
        self.t, self.end = start, end
        self.trader = None
        # (instant, what): the operator's commands, given to the journal once the clock passes them
        self.actions, self.db = [a for a in actions if start <= a[0] < end], db

    def now(self) -> datetime:
        return self.t

    def real_seconds(self, market_seconds: float) -> float:
        target = self.t + timedelta(seconds=market_seconds)
        if self.actions and self.actions[0][0] <= target:
            # wake at the operator's command, as a bot sleeping in short slices would
            from botctl.store import Store

            when, what = self.actions.pop(0)
            self.t = max(self.t, when)
            with Store.open(self.db) as store:
                operator(store, what)
            return 0.0
        self.t = target
        if self.t >= self.end and self.trader is not None:
            self.trader.stop = True
        return 0.0


def query(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def scheme(cid: str) -> str:
    """A client id without its namespace: account, cycle date, symbol, side."""
    match = re.fullmatch(rf"bc-.+?-({ACCOUNT})-(\d{{8}})T\d{{4}}-(.+)", cid)
    assert match, cid
    return "-".join(match.groups())


def damaged_bars(root: Path, end: date) -> tuple[pl.DataFrame, Path]:
    from botctl.adapters.file_data import load_bars

    frame = load_bars().filter((pl.col("date") >= date(2018, 1, 1)) & (pl.col("date") <= end))
    bad = (pl.col("symbol") == "XLE") & (pl.col("date") == SUSPECT_DAY)
    frame = frame.with_columns(*(pl.when(bad).then(pl.col(c) * 5).otherwise(pl.col(c)).alias(c)
                                 for c in ("open", "high", "low", "close", "adj_close")))
    data = root / "bars.parquet"
    frame.write_parquet(data)
    return frame, data


def backtest(root: Path, data: Path, models: str, start: date, end: date) -> str:
    """`botctl backtest`, a real subprocess, on a simulated account with the plan; its run id."""
    config = root / "bt-config"
    config.mkdir()
    shutil.copy(ROOT / "strategies.yaml", config)
    (config / "accounts.yaml").write_text(accounts_yaml("    broker: sim", models))
    done = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(config), "--db", str(root / "bt.db"),
                           "--data", str(data), "backtest", "--start", str(start), "--end", str(end), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["run_id"]


def paper_loop(root: Path, frame: pl.DataFrame, models: str, start: date, end: date,
               restarts: tuple[datetime, ...] = (), actions: tuple = ()) -> list[str]:
    """The paper loop in this process on jumping clocks against the fake, stopped and started
    again on the same journal at each of `restarts`, the operator's `actions` (instant, what)
    given as the clock passes them; what it printed."""
    from fakes.fake_alpaca import FakeAlpaca

    from botctl.cli.common import Globals, load_plan
    from botctl.runtime.trading import run_trading
    from botctl.store import Store

    edges = [datetime.combine(start, datetime.min.time(), timezone.utc) + timedelta(hours=13), *restarts,
             datetime.combine(end + timedelta(days=1), datetime.min.time(), timezone.utc) + timedelta(hours=1)]
    clocks = [JumpClock(a, b, actions, root / "paper.db") for a, b in zip(edges, edges[1:])]
    current = [clocks[0]]
    fake = FakeAlpaca(api_key=KEY, secret_key=SECRET, bars=frame, now=lambda: current[0].now(), fill_model="open").start()
    config = root / "paper-config"
    config.mkdir()
    shutil.copy(ROOT / "strategies.yaml", config)
    (config / "accounts.yaml").write_text(accounts_yaml(
        f"    broker: alpaca\n    data: alpaca\n    base_url: {fake.url}\n    data_url: {fake.url}\n"
        "    api_key_env: PARITY_KEY\n    secret_key_env: PARITY_SECRET", models))
    mp = pytest.MonkeyPatch()
    mp.setenv("PARITY_KEY", KEY)
    mp.setenv("PARITY_SECRET", SECRET)
    lines: list[str] = []
    try:
        plan = load_plan(Globals(config, root / "paper.db", None))
        for clock in clocks:
            current[0] = clock
            with Store.open(root / "paper.db") as store:
                outcome = run_trading(plan, store, once=False, data_path=None, cache_dir=root / "cache",
                                      confirm_first_cycle=True, echo=lines.append, clock=clock,
                                      started=lambda trader, clock=clock: setattr(clock, "trader", trader))
            assert outcome["status"] == "stopped", lines  # its clock stopped it
    finally:
        mp.undo()
        fake.stop()
    return lines


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper-parity")
    frame, data = damaged_bars(root, END)
    bt_run = backtest(root, data, MODELS, START, END)
    lines = paper_loop(root, frame, MODELS, START, END)
    return {"bt": root / "bt-backtests.db", "bt_run": bt_run, "paper": root / "paper.db", "lines": lines}


def orders(db: Path, run: str | None = None) -> list[tuple]:
    rows = query(db, "SELECT client_order_id, symbol, side, qty, status FROM orders WHERE account = ?"
                     + (" AND run_id = ?" if run else "") + " ORDER BY client_order_id", ACCOUNT, *([run] if run else []))
    return [(scheme(c), s, side, q, st) for c, s, side, q, st in rows]


def assert_same_orders_and_fills(runs: dict) -> None:
    bt, paper = orders(runs["bt"], runs["bt_run"]), orders(runs["paper"])
    assert len(bt) >= 10, bt
    assert [o[:3] + (o[4],) for o in bt] == [o[:3] + (o[4],) for o in paper], runs["lines"][-20:]
    for a, b in zip(bt, paper):
        assert a[3] == pytest.approx(b[3], abs=1e-9), (a, b)
    fills = "SELECT symbol, side, qty, price FROM fills WHERE account = ? {} ORDER BY ts_event, symbol, side"
    bt_fills = query(runs["bt"], fills.format("AND run_id = ?"), ACCOUNT, runs["bt_run"])
    paper_fills = query(runs["paper"], fills.format(""), ACCOUNT)
    assert len(bt_fills) == len(paper_fills) > 0
    for a, b in zip(bt_fills, paper_fills):
        assert a[:2] == b[:2] and a[2] == pytest.approx(b[2], abs=1e-9) and a[3] == pytest.approx(b[3], rel=1e-9), (a, b)


def event_shapes(runs: dict) -> tuple[list, list]:
    sql = "SELECT type, subsystem, details FROM events WHERE account = ? {} ORDER BY id"

    def shape(rows):
        return sorted({(t, s, tuple(sorted(json.loads(d or "{}")))) for t, s, d in rows if not t.startswith(LOOP_ONLY)})

    run = () if runs["bt_run"] is None else (runs["bt_run"],)
    return (shape(query(runs["bt"], sql.format("AND run_id = ?" if run else ""), ACCOUNT, *run)),
            shape(query(runs["paper"], sql.format(""), ACCOUNT)))


def assert_same_nav(runs: dict, sessions: int) -> None:
    """The backtest marks every session at its close; the paper loop after each close (its
    last mark of a New York day; it also marks right after a cycle, at the previous closes)."""
    nav = "SELECT ts_event, nav FROM nav WHERE account = ? {} ORDER BY ts_event"
    bt_nav = {ts[:10]: v for ts, v in query(runs["bt"], nav.format("AND run_id = ?"), ACCOUNT, runs["bt_run"])}
    paper_nav: dict[str, float] = {}
    for ts, value in query(runs["paper"], nav.format(""), ACCOUNT):
        at = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(NEW_YORK)
        if at.hour >= 16:
            paper_nav[at.date().isoformat()] = value
    assert len(paper_nav) >= sessions
    for day, value in paper_nav.items():
        assert bt_nav[day] == pytest.approx(value, rel=1e-9), day


def test_the_paper_loop_places_the_backtests_orders_at_its_prices(runs):
    assert_same_orders_and_fills(runs)


def test_the_paper_loop_records_the_backtests_events_and_nav(runs):
    bt, paper = event_shapes(runs)
    assert bt == paper
    assert ("data.rejected", "guard", ("due", "rule", "symbols")) in bt  # the suspect day was refused in both
    assert_same_nav(runs, 95)


# --- a signal book, restarted mid-position ------------------------------------------------------

BOOK = "[SectorBreakoutBook_v1]"
BOOK_START, BOOK_END = date(2020, 1, 2), date(2020, 3, 31)  # entries, then the February-March fall
RESTART = datetime(2020, 2, 12, 22, 0, tzinfo=timezone.utc)  # after a close, positions open


@pytest.fixture(scope="module")
def book_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper-parity-book")
    frame, data = damaged_bars(root, BOOK_END)
    bt_run = backtest(root, data, BOOK, BOOK_START, BOOK_END)
    lines = paper_loop(root, frame, BOOK, BOOK_START, BOOK_END, restarts=(RESTART,))
    return {"bt": root / "bt-backtests.db", "bt_run": bt_run, "paper": root / "paper.db", "lines": lines}


def test_a_signal_book_restarted_mid_position_trades_as_its_backtest(book_runs):
    held = query(book_runs["paper"], "SELECT count(*) FROM position_state WHERE account = ?", ACCOUNT)
    assert held[0][0] >= 1  # the books' state was journaled (and read back by the restarted run)
    bought_before = query(book_runs["paper"], "SELECT count(*) FROM fills WHERE account = ? AND side = 'buy' "
                          "AND ts_event < ?", ACCOUNT, RESTART.isoformat())
    assert bought_before[0][0] >= 1  # positions were open across the restart
    assert_same_orders_and_fills(book_runs)
    bt, paper = event_shapes(book_runs)
    assert bt == paper
    assert {t for t, s, _ in bt if s == "book"} >= {"book.entry", "book.exit"}
    assert_same_nav(book_runs, 55)


# --- a kill, a resume and a kill --flatten: the replay and the paper loop act alike -----------

HALT_START, HALT_END = date(2020, 1, 2), date(2020, 4, 30)
# After a close, before the next session, as an operator would: a kill that keeps the positions,
# a resume before March's rebalance, then a kill --flatten in April.
HALTS = ((date(2020, 2, 10), "kill"), (date(2020, 2, 20), "resume"), (date(2020, 4, 14), "flatten"))


def operator(store, action: str) -> None:
    from botctl.runtime.control import clear_halt, request_halt

    if action == "resume":
        clear_halt(store, [ACCOUNT], who="parity operator")
    else:
        request_halt(store, [ACCOUNT], flatten=action == "flatten", reason=f"parity {action}", who="parity operator")


def replay(root: Path, data: Path, models: str, start: date, end: date, halts=HALTS) -> None:
    """`run --replay --speed max` in this process, the operator acting after the closes of `halts`."""
    from botctl.adapters.file_data import load_bars
    from botctl.cli.common import Globals, load_plan
    from botctl.runtime.replay import run_replay
    from botctl.store import Store
    from botctl.strategy.bars import bars_from_frame

    config = root / "replay-config"
    config.mkdir()
    shutil.copy(ROOT / "strategies.yaml", config)
    (config / "accounts.yaml").write_text(accounts_yaml("    broker: sim", models))
    plan = load_plan(Globals(config, root / "replay.db", data))
    bars = bars_from_frame(load_bars(data), plan.symbols)
    due = dict(halts)
    with Store.open(root / "replay.db", trading=True) as store:
        def progress(done, total, day, navs):
            if day in due:
                operator(store, due[day])

        summary = run_replay(plan, bars, store, start, end, speed=None, progress=progress)
    assert summary.status == "finished"


@pytest.fixture(scope="module")
def halt_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper-parity-halts")
    frame, data = damaged_bars(root, HALT_END)
    replay(root, data, MODELS, HALT_START, HALT_END)
    actions = tuple((datetime.combine(day, datetime.min.time(), timezone.utc) + timedelta(hours=22), what)
                    for day, what in HALTS)
    lines = paper_loop(root, frame, MODELS, HALT_START, HALT_END, actions=actions)
    return {"replay": root / "replay.db", "paper": root / "paper.db", "lines": lines}


def all_orders(db: Path) -> list[tuple]:
    """Every order of the account: cycle orders by their id scheme, a flatten's by what they are
    (the simulator and Alpaca name closing orders their own way)."""
    rows = query(db, "SELECT client_order_id, symbol, side, qty, status, reason FROM orders WHERE account = ? "
                     "ORDER BY ts_init, symbol", ACCOUNT)
    return [(scheme(c) if c.startswith("bc-") else "flatten", s, side, round(q, 6), st, r)
            for c, s, side, q, st, r in rows]


def test_kills_a_resume_and_a_flatten_act_alike_in_the_replay_and_the_paper_loop(halt_runs):
    replayed, paper = all_orders(halt_runs["replay"]), all_orders(halt_runs["paper"])
    assert replayed == paper, halt_runs["lines"][-20:]
    closing = [o for o in paper if o[0] == "flatten"]
    assert closing and all(o[2] == "sell" and o[4] == "filled" for o in closing)
    # nothing was bought while the first kill held, nor after the flatten
    assert not [o for o in paper if o[0] != "flatten" and "20200211" <= o[0].split("-")[1] <= "20200220"]
    assert not [o for o in paper if o[0] != "flatten" and o[0].split("-")[1] > "20200414"]
    fills = "SELECT symbol, side, qty, price FROM fills WHERE account = ? ORDER BY ts_event, symbol, side"
    replay_fills, paper_fills = query(halt_runs["replay"], fills, ACCOUNT), query(halt_runs["paper"], fills, ACCOUNT)
    assert len(replay_fills) == len(paper_fills) > 0
    for a, b in zip(replay_fills, paper_fills):
        assert a[:2] == b[:2] and a[2] == pytest.approx(b[2], abs=1e-9) and a[3] == pytest.approx(b[3], rel=1e-9), (a, b)
    shapes = event_shapes({"bt": halt_runs["replay"], "bt_run": None, "paper": halt_runs["paper"]})
    assert shapes[0] == shapes[1]
    assert {"kill.requested", "kill.orders_canceled", "kill.flatten", "resume"} <= {t for t, _, _ in shapes[1]}
    for db in (halt_runs["replay"], halt_runs["paper"]):  # nothing held at the end, all in cash
        (ts, value, cash, gross), = query(db, "SELECT ts_event, nav, cash, gross_exposure FROM nav WHERE account = ? "
                                              "ORDER BY ts_event DESC, id DESC LIMIT 1", ACCOUNT)
        assert query(db, "SELECT count(*) FROM positions WHERE account = ? AND ts_event = ? AND qty != 0",
                     ACCOUNT, ts) == [(0,)]
        assert cash == pytest.approx(value) and gross == 0
    nav = "SELECT substr(ts_event, 1, 10), nav FROM nav WHERE account = ? ORDER BY ts_event"
    replay_nav = dict(query(halt_runs["replay"], nav, ACCOUNT))
    paper_nav = dict(query(halt_runs["paper"], nav, ACCOUNT))  # its last mark of each day
    assert len(paper_nav) >= 80
    for day, value in paper_nav.items():
        assert replay_nav[day] == pytest.approx(value, rel=1e-9), day
