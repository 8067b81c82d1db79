"""The dashboard driven by Textual's pilot over a replayed journal: what the panels show
against the journal itself, what each key does, and the clear states of an empty journal,
a halted account and a health endpoint that does not answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
from tui_support import botctl, copy_journal, query, settle, text_of

from botctl.tui import widgets as w
from botctl.tui.screens import ConfirmScreen, ErrorsScreen, HelpScreen

WIDE = (160, 48)


def drive(app, steps, size=WIDE):
    """Run `app` headless, settle, then `await steps(pilot)`."""

    async def main():
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await steps(pilot)

    asyncio.run(main())


def money(value: float) -> str:
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


def test_panels_show_the_journals_latest_positions_and_figures(db, make_app):
    app = make_app(db)
    (nav, cash, leverage) = query(db, "SELECT nav, cash, leverage FROM nav WHERE account = 'rotation-sim' ORDER BY id DESC LIMIT 1")[0]
    (first,) = query(db, "SELECT nav FROM nav WHERE account = 'rotation-sim' ORDER BY id LIMIT 1")[0]
    positions = query(db, "SELECT symbol, qty, price, value FROM positions WHERE account = 'rotation-sim' "
                          "AND ts_event = (SELECT max(ts_event) FROM positions WHERE account = 'rotation-sim')")
    assert positions

    async def steps(pilot):
        header = text_of(app.query_one(w.HeaderBar))
        assert "NOT RUNNING" in header and "rotation-sim" in header and "paper/sim" in header
        assert money(nav) in header
        # A finished replay: its own clock (the last mark), not the wall clock; every time has its year.
        assert "marked 2021-03-31 20:00Z (5m old)" in header
        assert "bars to 2025-12-24" in header  # the data's own end, whatever the clock
        assert "replay clock 2021-03-31 20:00Z (finished 2021-03-31 20:00Z)" in header
        assert "gates SectorRotationModel_v1 active · SectorRotationBull_v1 active · SectorRotationBear_v1 gated" in header
        table = text_of(app.query_one(w.PositionsPanel))
        for symbol, qty, price, value in positions:
            row = next(line for line in table.splitlines() if line.split() and line.split()[0] == symbol)
            assert money(value) in row and f"{price:,.2f}" in row and f"{value / nav:.1%}" in row
        assert f"{leverage:.2f}x" in str(app.query_one(w.PositionsPanel).border_title)
        perf = text_of(app.query_one(w.PerformancePanel))
        assert money(nav) in perf and money(cash) in perf
        total = next(line for line in perf.splitlines() if line.strip().startswith("Total"))
        assert f"{nav / first - 1:+.2%}" in total
        risk = text_of(app.query_one(w.RiskPanel))
        assert f"{leverage:.2f}x" in risk and "allowed" in risk
        assert app.snapshot.trades.trades > 0
        assert "Win rate" in text_of(app.query_one(w.TradesPanel))
        models = text_of(app.query_one(w.ModelsPanel))
        for name in ("SectorRotationModel_v1", "SectorRotationBull_v1", "SectorRotationBear_v1"):
            assert name in models
        assert "gated" in models and "2021-04-01 14:00Z" in models  # next month's first session, 30 min in
        rankings = text_of(app.query_one(w.RankingsPanel))
        for symbol, *_ in positions:
            assert f"* {symbol}" in rankings  # held symbols are marked
        activity = text_of(app.query_one(w.ActivityPanel))
        (last_fill,) = query(db, "SELECT symbol FROM fills WHERE account = 'rotation-sim' ORDER BY id DESC LIMIT 1")[0]
        assert last_fill in activity and "2021-03-01" in activity and "15:00" in activity
        assert "no open orders" in text_of(app.query_one(w.OrdersPanel))
        assert "no warnings or errors" in text_of(app.query_one(w.ErrorsPanel))
        assert len(app.snapshot.nav) == len(app.snapshot.bench) == 61

    drive(app, steps)


def test_a_switches_to_the_next_account_and_back(db, make_app):
    app = make_app(db)
    (nav,) = query(db, "SELECT nav FROM nav WHERE account = 'adaptive-sim' ORDER BY id DESC LIMIT 1")[0]

    async def steps(pilot):
        assert app.account == "rotation-sim"
        await pilot.press("a")
        await settle(pilot)
        assert app.account == "adaptive-sim"
        assert money(nav) in text_of(app.query_one(w.HeaderBar))
        assert "SectorRotationAdaptive_v3" in text_of(app.query_one(w.ModelsPanel))
        assert app.query_one("Tabs").active == "account-1"
        await pilot.press("a")
        await settle(pilot)
        assert app.account == "signals-sim"  # the shipped signal book's account
        # its steps hold a take-profit ladder (a list): the market panels still rank its universe
        rankings = text_of(app.query_one(w.RankingsPanel))
        assert "market data:" not in rankings and "XLK" in rankings, rankings
        assert "market data:" not in text_of(app.query_one(w.ModelsPanel))
        await pilot.press("a")
        await settle(pilot)
        assert app.account == "rotation-sim"

    drive(app, steps)


def test_the_account_selector_switches_accounts(db, make_app):
    app = make_app(db)

    async def steps(pilot):
        tabs = app.query_one("Tabs")
        assert tabs.display
        await pilot.click("#account-1")
        await settle(pilot)
        assert app.account == "adaptive-sim"
        assert "adaptive-sim" in text_of(app.query_one(w.HeaderBar))

    drive(app, steps)


def test_kill_after_confirming_writes_a_halt(db, make_app):
    app = make_app(db)

    async def steps(pilot):
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("a", "k")  # the dialog holds the keys: no switch, no second dialog
        await pilot.pause()
        assert app.account == "rotation-sim" and len(app.screen_stack) == 2
        await pilot.press("y")
        await settle(pilot)
        assert "HALTED" in text_of(app.query_one(w.HeaderBar))
        assert "HALTED" in text_of(app.query_one(w.RiskPanel))

    drive(app, steps)
    rows = query(db, "SELECT account, halted, reason, flatten, acked_at IS NOT NULL, who FROM control")
    assert len(rows) == 1
    account, halted, reason, flatten, acked, who = rows[0]
    assert (account, halted, flatten, acked) == ("rotation-sim", 1, 0, 1)
    assert reason == "operator kill" and "botctl" in who
    assert query(db, "SELECT count(*) FROM events WHERE type = 'kill.requested' AND account = 'rotation-sim'")[0][0] == 1


def test_kill_and_flatten_writes_what_botctl_kill_writes(replayed, make_app, tmp_path):
    ours = copy_journal(replayed, tmp_path / "tui.db")
    theirs = copy_journal(replayed, tmp_path / "cli.db")
    for journal in (ours, theirs):  # a kill flattens a paper account's own state, never a replay's
        with sqlite3.connect(journal) as conn:
            conn.execute("UPDATE runs SET kind = 'paper' WHERE kind = 'replay'")
    app = make_app(ours)

    async def steps(pilot):
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert "no positions" in text_of(app.query_one(w.PositionsPanel))  # flattened

    drive(app, steps)
    assert botctl(theirs, "kill", "--account", "rotation-sim", "--flatten").exit_code == 0
    columns = "account, halted, reason, flatten, acked_at IS NOT NULL"
    assert query(ours, f"SELECT {columns} FROM control") == query(theirs, f"SELECT {columns} FROM control")
    events = "SELECT type, severity, account FROM events WHERE subsystem = 'control' ORDER BY id"
    assert query(ours, events) == query(theirs, events)
    assert query(ours, "SELECT count(*) FROM orders WHERE reason = 'flatten' AND status = 'filled'")[0][0] == \
        query(theirs, "SELECT count(*) FROM orders WHERE reason = 'flatten' AND status = 'filled'")[0][0] > 0


def test_canceling_the_kill_writes_nothing(db, make_app):
    app = make_app(db)

    async def steps(pilot):
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("K", "escape")
        await settle(pilot)

    drive(app, steps)
    assert query(db, "SELECT count(*) FROM control")[0][0] == 0
    assert query(db, "SELECT count(*) FROM events WHERE subsystem = 'control'")[0][0] == 0


def test_resume_after_confirming_clears_the_halt(db, make_app):
    assert botctl(db, "kill", "--account", "adaptive-sim").exit_code == 0
    app = make_app(db, account="adaptive-sim")

    async def steps(pilot):
        assert "HALTED" in text_of(app.query_one(w.HeaderBar))
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert "HALTED" not in text_of(app.query_one(w.HeaderBar))

    drive(app, steps)
    assert query(db, "SELECT halted FROM control WHERE account = 'adaptive-sim'") == [(0,)]
    assert query(db, "SELECT count(*) FROM events WHERE type = 'resume'")[0][0] == 1


def test_a_halted_account_says_so(db, make_app):
    assert botctl(db, "kill", "--account", "rotation-sim", "--reason", "testing the halt").exit_code == 0
    app = make_app(db)

    async def steps(pilot):
        header = text_of(app.query_one(w.HeaderBar))
        assert "HALTED" in header and "testing the halt" in header
        assert "HALTED" in text_of(app.query_one(w.RiskPanel))
        errors = text_of(app.query_one(w.ErrorsPanel))
        assert "kill.requested" in errors  # the halt's WARN events are listed

    drive(app, steps)


def test_an_absent_journal_is_a_clear_state(tmp_path, make_app):
    app = make_app(tmp_path / "nothing-here.db")

    async def steps(pilot):
        header = text_of(app.query_one(w.HeaderBar))
        assert "NOT RUNNING" in header and "no database at" in header
        assert "no database at" in text_of(app.query_one(w.PositionsPanel))
        assert app.snapshot.accounts == ["rotation-sim", "adaptive-sim", "signals-sim"]  # from the config
        await pilot.press("k")  # nothing to write to: refused with a message, no dialog
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)

    drive(app, steps)
    assert not (tmp_path / "nothing-here.db").exists()  # read-only: never created


def test_a_fresh_journal_without_runs_is_a_clear_state(tmp_path, make_app):
    from botctl.store import Store

    fresh = tmp_path / "fresh.db"
    Store.open(fresh).close()
    app = make_app(fresh)

    async def steps(pilot):
        header = text_of(app.query_one(w.HeaderBar))
        assert "NOT RUNNING" in header and "no run recorded yet" in header
        assert "no NAV recorded yet" in text_of(app.query_one(w.PositionsPanel))
        assert "no orders or fills yet" in text_of(app.query_one(w.ActivityPanel))
        assert "no closed trades yet" in text_of(app.query_one(w.TradesPanel))

    drive(app, steps)


def test_a_missing_health_endpoint_is_shown_not_raised(db, make_app):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(db, health_url=f"http://127.0.0.1:{port}")

    async def steps(pilot):
        header = text_of(app.query_one(w.HeaderBar))
        assert "health: unreachable" in header
        assert app.snapshot.view.nav is not None  # everything else still shows

    drive(app, steps)


def test_a_health_endpoint_that_answers_is_read(db, make_app):
    from botctl.runtime.health import HealthServer, Telemetry

    telemetry = Telemetry({"rotation-sim": {}})
    with HealthServer(telemetry, "127.0.0.1", 0) as server:
        app = make_app(db, health_url=server.address + "/health")

        async def steps(pilot):
            assert app.snapshot.health["status"] == "healthy"
            assert "health: healthy" in text_of(app.query_one(w.HeaderBar))

        drive(app, steps)


def test_errors_are_listed_and_e_expands_them(db, make_app):
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO events (ts_event, subsystem, type, severity, account, message, details) VALUES "
                     "('2021-03-31T19:00:00.000000Z', 'broker', 'order.rejected', 'ERROR', 'rotation-sim', "
                     "'insufficient buying power for XLE', '{\"symbol\": \"XLE\"}')")
        conn.execute("INSERT INTO events (ts_event, subsystem, type, severity, message, details) VALUES "
                     "('2021-03-31T18:00:00.000000Z', 'data', 'data.stale', 'WARN', 'bars are 3 days old', '{}')")
    app = make_app(db)

    async def steps(pilot):
        panel = text_of(app.query_one(w.ErrorsPanel))
        assert "ERROR" in panel and "order.rejected" in panel and "data.stale" in panel
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ErrorsScreen)
        assert [e.type for e in app.screen.events] == ["order.rejected", "data.stale"]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ErrorsScreen)

    drive(app, steps)


def test_help_and_quit(db, make_app):
    app = make_app(db)

    async def steps(pilot):
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert app._exit

    drive(app, steps)


def test_r_refreshes_and_reading_happens_off_the_ui_thread(db, make_app):
    app = make_app(db)
    threads = []
    snapshot = app.source.snapshot

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return snapshot(*args, **kwargs)

    app.source.snapshot = recording

    async def steps(pilot):
        before = len(threads)
        with sqlite3.connect(db) as conn:  # a new mark arrives
            conn.execute("INSERT INTO nav (run_id, account, ts_event, nav, cash, gross_exposure, leverage) "
                         "SELECT run_id, account, '2021-04-01T20:00:00.000000Z', 123456.78, cash, gross_exposure, leverage "
                         "FROM nav WHERE account = 'rotation-sim' ORDER BY id DESC LIMIT 1")
        await pilot.press("r")
        await settle(pilot)
        assert len(threads) == before + 1
        assert "$123,456.78" in text_of(app.query_one(w.HeaderBar))

    drive(app, steps)
    assert threads and all(t is not threading.main_thread() for t in threads)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_the_key_figures_are_on_the_first_screen(db, make_app, size):
    app = make_app(db)
    width, height = size

    async def steps(pilot):
        header = app.query_one(w.HeaderBar)
        assert header.region.y == 0 and 3 <= header.region.height <= 5
        for panel_id in ("positions", "performance", "risk"):  # fully visible without scrolling
            region = app.query_one(f"#{panel_id}").region
            assert region.height >= 5 and region.bottom <= height - 1 and region.right <= width
        for panel in app.query(".panel"):  # the rest is laid out, below the fold at 80x24
            if isinstance(panel, w.SignalsPanel):
                assert not panel.display  # no feeds.yaml: not shown (tests/tui/test_signals_panel.py)
                continue
            assert panel.virtual_region.height >= 3 and panel.virtual_region.width >= 30
        body = app.query_one("#body")
        if size == (160, 48):
            assert body.max_scroll_y == 0  # everything fits on a large terminal
        else:
            assert body.max_scroll_y > 0

    drive(app, steps, size=size)


def _set_run(db, **columns):
    sets = ", ".join(f"{k} = ?" for k in columns)
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE runs SET {sets} WHERE id = (SELECT max(id) FROM runs)", tuple(columns.values()))


def _ts(when):
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_crashed_bot_is_unhealthy_in_red_with_the_reason(db, make_app):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs: the run was killed without writing its end
    _set_run(db, status="running", pid=gone.pid, ended_at=None)
    app = make_app(db)

    async def steps(pilot):
        header = text_of(app.query_one(w.HeaderBar))
        assert "UNHEALTHY" in header and "NOT RUNNING" not in header
        assert f"pid {gone.pid} is not running (crashed or killed without a clean stop)" in header
        assert w.STATUS_STYLE["unhealthy"].endswith("on red")

    drive(app, steps)
    assert botctl(db, "status").exit_code == 1  # what `status` says too


@contextlib.contextmanager
def a_running_bot(db, heartbeat_age: float = 0.0):
    """The journal's latest run made a live botctl process (by its command line) that last
    heartbeat `heartbeat_age` seconds ago; yields the time that was 'now'."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "botctl"])
    try:
        now = datetime.now(timezone.utc)
        _set_run(db, status="running", pid=proc.pid, ended_at=None, started_at=_ts(now),
                 heartbeat_at=_ts(now - timedelta(seconds=heartbeat_age)))
        yield now
    finally:
        proc.kill()
        proc.wait()


def test_a_late_heartbeat_is_not_healthy_whatever_health_says(db, make_app):
    from botctl.runtime.health import HealthServer, Telemetry

    with a_running_bot(db, heartbeat_age=120) as now, HealthServer(Telemetry({"rotation-sim": {}}), "127.0.0.1", 0) as server:
        app = make_app(db, health_url=server.address, clock=lambda: now)

        async def steps(pilot):
            header = text_of(app.query_one(w.HeaderBar))
            assert app.snapshot.health["status"] == "healthy"  # the endpoint still answers
            assert "DEGRADED" in header and "heartbeat 120s old" in header

        drive(app, steps)


def test_the_health_address_the_run_journaled_is_used(db, make_app):
    from botctl.runtime.health import HealthServer, Telemetry

    with a_running_bot(db) as now, HealthServer(Telemetry({"rotation-sim": {}}), "127.0.0.1", 0) as server:
        url = server.address + "/health"  # not the port in accounts.yaml
        with sqlite3.connect(db) as conn:
            (run_id,) = conn.execute("SELECT run_id FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            conn.execute("INSERT INTO events (ts_event, subsystem, type, severity, run_id, message, details) "
                         "VALUES (?, 'health', 'health.serving', 'INFO', ?, 'health endpoint', ?)",
                         (_ts(now), run_id, json.dumps({"url": url})))
        app = make_app(db, clock=lambda: now)

        async def steps(pilot):
            assert app.snapshot.health is not None and app.snapshot.health["status"] == "healthy"
            header = text_of(app.query_one(w.HeaderBar))
            assert "HEALTHY" in header and "health: healthy" in header

        drive(app, steps)


def test_q_in_a_confirmation_cancels_it(db, make_app):
    app = make_app(db)

    async def steps(pilot):
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("q")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen) and not app._exit

    drive(app, steps)
    assert query(db, "SELECT count(*) FROM control")[0][0] == 0


def test_an_account_missing_from_the_config_says_so(db, make_app):
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE nav SET account = 'retired-sim' WHERE account = 'adaptive-sim'")
    app = make_app(db, account="retired-sim")

    async def steps(pilot):
        assert app.account == "retired-sim"
        for panel in (w.ModelsPanel, w.RankingsPanel):
            text = " ".join(text_of(app.query_one(panel)).split())
            assert "loading" not in text and "retired-sim is in the journal but not in accounts.yaml" in text

    drive(app, steps)


def test_activity_lists_each_order_once_with_its_fill(db, make_app):
    app = make_app(db)
    orders = query(db, "SELECT o.side, o.symbol, SUM(f.qty * f.as_traded_price) / SUM(f.qty) FROM orders o "
                       "JOIN fills f USING (client_order_id) WHERE o.account = 'rotation-sim' "
                       "GROUP BY o.id ORDER BY o.id DESC LIMIT 12")

    async def steps(pilot):
        activity = text_of(app.query_one(w.ActivityPanel))
        assert "Order @ as traded [status]" in activity  # brackets kept, not read as markup
        lines = [line for line in activity.splitlines() if re.match(r"\s*\d\d:\d\d ", line)]
        assert len(lines) == len(orders)  # one line per order: its fill is on it, not a line of its own
        for (side, symbol, price), line in zip(orders, lines):
            assert f"{side:<4} " in line and symbol in line and f"@ {price:,.2f}" in line  # the traded price

    drive(app, steps)


def test_drawdown_at_the_peak_reads_zero_not_plus_zero(db, make_app):
    with sqlite3.connect(db) as conn:  # a new high: no drawdown now
        conn.execute("INSERT INTO nav (run_id, account, ts_event, nav, cash, gross_exposure, leverage) "
                     "SELECT run_id, account, '2021-04-01T20:00:00.000000Z', 999999.0, cash, gross_exposure, leverage "
                     "FROM nav WHERE account = 'rotation-sim' ORDER BY id DESC LIMIT 1")
    app = make_app(db)

    async def steps(pilot):
        risk = text_of(app.query_one(w.RiskPanel))
        row = next(line for line in risk.splitlines() if "Drawdown now" in line)
        assert "0.00% (at peak)" in row and "+0.00%" not in row
        assert "+" not in next(line for line in risk.splitlines() if "Max drawdown" in line)

    drive(app, steps)


def test_status_and_the_dashboard_read_a_replay_on_its_own_clock(db, make_app):
    result = botctl(db, "status", "--json")
    body = json.loads(result.output)
    models = body["accounts"]["rotation-sim"]["models"]
    assert models and all(m["next_rebalance"] == "2021-04-01" for m in models)  # not next month of the wall clock
    app = make_app(db, clock=lambda: datetime.now(timezone.utc))  # the real wall clock, years later

    async def steps(pilot):
        assert app.snapshot.replay_now == datetime(2021, 3, 31, 20, 0, tzinfo=timezone.utc)
        assert app.snapshot.rankings[0].as_of.isoformat() == "2021-03-31"
        assert {m.next_rebalance.date().isoformat() for m in app.snapshot.models} == {"2021-04-01"}
        header = text_of(app.query_one(w.HeaderBar))
        assert "replay clock 2021-03-31 20:00Z" in header and "days old" in header  # and old, against today

    drive(app, steps)


def test_the_errors_dialog_says_when_it_shows_only_the_newest(db, make_app):
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO events (ts_event, subsystem, type, severity, account, message, details) VALUES "
                         "(?, 'data', 'data.stale', 'WARN', 'rotation-sim', 'bars are old', '{}')",
                         [(f"2021-03-{d:02d}T18:{m:02d}:00.000000Z",) for d in range(1, 31) for m in range(5)])
    app = make_app(db)

    async def steps(pilot):
        await pilot.press("e")
        await pilot.pause()
        title = str(app.screen.query_one("#dialog-title").render())
        assert "the newest 100 (older ones: botctl tail --kind events)" in title and "(100" not in title

    drive(app, steps)


def test_a_signal_books_positions_show_age_entry_stop_stage_and_score(db, make_app):
    (run_id, state), = query(db, "SELECT scope, state FROM position_state WHERE account = 'signals-sim' "
                                 "AND model = 'SectorBreakoutBook_v1'")
    held = json.loads(state)["positions"]
    assert len(held) >= 2
    waiting = sorted(held)[0]
    # that symbol's exits wait for a price (what engine.positions keeps when a bar is missing)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE position_state SET state = json_set(state, ?, '2021-03-29') WHERE scope = ? "
                     "AND account = 'signals-sim'", (f"$.positions.{waiting}.waiting_since", run_id))
    app = make_app(db, account="signals-sim")

    async def steps(pilot):
        assert app.account == "signals-sim"
        panel = text_of(app.query_one(w.PositionsPanel))
        assert "book SectorBreakoutBook_v1  as of 2021-03-30" in panel, panel
        for symbol, p in held.items():
            row = next(line.split() for line in panel.splitlines()
                       if line.split()[:1] == [symbol] and line.split()[1].endswith("d"))
            age = (datetime.fromisoformat("2021-03-30") - datetime.fromisoformat(p["decided_on"])).days
            stop = max(p["entry_price"] * 0.95, p["high_close"] * 0.96)  # the shipped stop and trailing stop
            assert row == [symbol, f"{age}d", f"{p['entry_price']:,.2f}", f"{stop:,.2f}", str(p["stage"]),
                           f"{p['score']:.3f}"], row
        assert f"{waiting}: exit waiting since 2021-03-29, no price (its exits are not checked)" in panel, panel
        assert sum("exit waiting" in line for line in panel.splitlines()) == 1

    drive(app, steps)
