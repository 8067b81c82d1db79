"""Data faults: stale bars, a stale cache with the data endpoint down, truncated parquet files,
NaN and zero prices, a missing symbol, a bar far outside the price collar.

Alpaca accounts (`data: alpaca`) run `run --once` in this process (`run_trading` on a
SkipClock) against ChaosAlpaca, one XNYS session after another; simulated accounts get their
bars from `--data` files through the CLI. What must hold: no trade on bad data, an event of
severity WARN or above that names the problem, and trading again once the data is good.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from chaos_support import (
    KEY,
    SECRET,
    SkipClock,
    alpaca_account,
    bundled_bars,
    clock_spec,
    environ,
    ledger,
    make_workspace,
    new_chaos_fake,
    no_traceback,
    ny,
    quick_broker,
    run_loop,
    sessions_from,
    target_error,
)
from typer.testing import CliRunner

from botctl.cli.app import app

FIRST = date(2024, 3, 4)  # Monday; the last closed bar is Friday 1 March
DAYS = sessions_from(FIRST, 3)
PROBLEM = ("WARN", "ERROR", "CRITICAL")


class Desk:
    """One Alpaca account with `data: alpaca` on a ChaosAlpaca, one `run --once` per session."""

    def __init__(self, tmp_path: Path, bars: pl.DataFrame | None = None) -> None:
        self.clock = {"now": ny(DAYS[0].day, 10, 30)}
        self.fake = new_chaos_fake(now=lambda: self.clock["now"], bars=bars if bars is not None else bundled_bars())
        self.ws = make_workspace(tmp_path)
        from chaos_support import daily_strategies

        daily_strategies(self.ws.config)
        self.ws.write_accounts(alpaca_account("alp", self.fake.url))

    def once(self, day: date) -> str:
        at = ny(day, 10, 30)
        self.clock["now"] = at
        with environ(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET), quick_broker():
            outcome = run_loop(self.ws, SkipClock(at, at + timedelta(hours=1)), once=True)
        return outcome["accounts"]["alp"]

    def serve(self, bars: pl.DataFrame) -> None:
        """Replace the bars the fake serves (the provider corrected its data)."""
        with self.fake._lock:
            self.fake._bar_days.clear()
            self.fake._bar_rows.clear()
            self.fake._load_bars(bars)

    def orders_on(self, day: date) -> list[dict]:
        return [o for o in self.fake.orders() if o["created_at"][:10] == str(day)]

    def problems(self) -> list[tuple[str, str, str]]:
        return [e for e in self.ws.events("alp") if e[1] in PROBLEM]

    def close(self) -> None:
        self.fake.stop()


@pytest.mark.timeout(60)
def test_stale_bars_block_every_order_with_a_warn_and_fresh_bars_trade(tmp_path):
    desk = Desk(tmp_path)
    try:
        desk.fake.inject("stale_data", count=None, days=10)
        outcome = desk.once(DAYS[0].day)  # could not trade: run --once exits 1 on this
        assert outcome.startswith("not trading: all ") and "blocked by the risk guard" in outcome, outcome
        assert desk.fake.orders() == []
        blocked = [e for e in desk.problems() if e[0] == "gate.blocked"]
        assert blocked and all(e[1] == "WARN" and "days old" in e[2] for e in blocked), desk.problems()
        rules = {r[0] for r in desk.ws.query(
            "SELECT json_extract(details, '$.rule') FROM events WHERE type = 'gate.blocked'")}
        assert rules == {"stale_data"}
        desk.fake.clear_faults()
        assert "order(s) sent" in desk.once(DAYS[1].day)
        assert desk.orders_on(DAYS[1].day) and target_error(desk.fake, DAYS[1].day) == []
        assert ledger(desk.ws, desk.fake, "alp").ok()
    finally:
        desk.close()


@pytest.mark.timeout(60)
def test_a_stale_cache_is_not_traded_on_while_the_data_endpoint_is_down(tmp_path):
    desk = Desk(tmp_path)
    try:
        assert "order(s) sent" in desk.once(DAYS[0].day)  # fills the cache
        cached = sorted(p.name for p in (desk.ws.cache / "alpaca-iex").iterdir())
        assert len(cached) == 12
        desk.fake.inject("500", method="GET", path="/v2/stocks/bars", count=None)
        outcome = desk.once(DAYS[1].day)
        assert outcome.startswith("failed: fetch") and "bars" in outcome, outcome
        assert desk.orders_on(DAYS[1].day) == []
        failed = [e for e in desk.problems() if e[0] == "cycle.failed"]
        assert failed and failed[-1][1] == "ERROR" and "HTTP 500" in failed[-1][2], failed
        desk.fake.clear_faults()
        assert "order(s) sent" in desk.once(DAYS[2].day)
        assert target_error(desk.fake, DAYS[2].day) == []
        assert ledger(desk.ws, desk.fake, "alp").ok()
    finally:
        desk.close()


@pytest.fixture(scope="module")
def truncated_cache(tmp_path_factory):
    desk = Desk(tmp_path_factory.mktemp("truncated_cache"))
    try:
        desk.once(DAYS[0].day)
        events_before = len(desk.ws.events())
        for file in (desk.ws.cache / "alpaca-iex").iterdir():
            file.write_bytes(file.read_bytes()[: file.stat().st_size // 3])
        outcome = desk.once(DAYS[1].day)
        yield {"desk": desk, "outcome": outcome, "new_events": desk.ws.events()[events_before:]}
    finally:
        desk.close()


def test_truncated_cache_files_are_refetched_and_traded_on_correctly(truncated_cache):
    desk = truncated_cache["desk"]
    assert "order(s) sent" in truncated_cache["outcome"], truncated_cache["outcome"]
    assert target_error(desk.fake, DAYS[1].day) == []
    assert ledger(desk.ws, desk.fake, "alp").ok()
    for file in (desk.ws.cache / "alpaca-iex").iterdir():
        assert pl.read_parquet(file).height > 200, file  # rewritten whole


def test_a_truncated_cache_file_is_reported_by_a_warn_event(truncated_cache):
    assert [e for e in truncated_cache["new_events"] if e[1] in PROBLEM and "cache" in e[2].lower()]


# --- bad values through the Alpaca data endpoint --------------------------------------------------


def _damage(frame: pl.DataFrame, symbol: str, day: date, value) -> pl.DataFrame:
    hit = (pl.col("symbol") == symbol) & (pl.col("date") == day)
    return frame.with_columns(pl.when(hit).then(value).otherwise(pl.col("adj_close")).alias("adj_close"),
                              pl.when(hit).then(value).otherwise(pl.col("close")).alias("close"))


LAST_BAR = date(2024, 3, 1)
BAD_ALPACA_DATA = {
    "missing-symbol": lambda f: f.filter(pl.col("symbol") != "XLK"),
    "nan-close": lambda f: _damage(f, "XLK", LAST_BAR, float("nan")),
    "zero-close": lambda f: _damage(f, "XLK", LAST_BAR, 0.0),
    "outside-collar": lambda f: _damage(f, "XLE", LAST_BAR, pl.col("adj_close") * 5),  # +400% in a day
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(BAD_ALPACA_DATA))
def test_bad_alpaca_bars_are_not_traded_on_and_are_reported(tmp_path, case):
    good = bundled_bars()
    desk = Desk(tmp_path, BAD_ALPACA_DATA[case](good))
    try:
        desk.once(DAYS[0].day)
        traded = [(o["side"], o["symbol"], o["qty"]) for o in desk.orders_on(DAYS[0].day)]
        assert traded == [], f"traded on bad data: {traded}; events: {desk.problems()}"
        symbol = "XLE" if case == "outside-collar" else "XLK"
        assert any(e[0] == "data.rejected" and e[1] == "WARN" and symbol in e[2] for e in desk.problems()), desk.problems()
        said = desk.ws.status()["accounts"]["alp"]["last_warning"]  # status says why it did not trade
        assert "data.rejected" in said and symbol in said, said
        desk.serve(good)
        assert "order(s) sent" in desk.once(DAYS[1].day)
        assert target_error(desk.fake, DAYS[1].day) == []
    finally:
        desk.close()


# --- bad --data files for a simulated account (the CLI, in this process) ----------------------------


runner = CliRunner()


def _sim_run_once(tmp_path: Path, data: Path, day: date, monkeypatch):
    config = tmp_path / "config"
    if not config.exists():
        ws = make_workspace(tmp_path)
        ws.write_accounts("paper-sim:\n  broker: sim\n  models: [SectorRotationModel_v1]")
    monkeypatch.setenv("BOTCTL_CLOCK", clock_spec(ny(day, 10, 30)))
    monkeypatch.setenv("BOTCTL_HEALTH_PORT", "0")
    result = runner.invoke(app, ["--config-dir", str(config), "--db", str(tmp_path / "journal.db"), "--data", str(data),
                                 "run", "--once", "--cache-dir", str(tmp_path / "cache")])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert no_traceback(result.output), result.output
    return result


def _journal(tmp_path: Path):
    from live.live_support import Workspace

    return Workspace(tmp_path)


SIM_BAD_FILES = {
    "nan-close": (lambda f: _damage(f, "XLK", LAST_BAR, float("nan")), "missing, NaN, infinite, zero or negative price"),
    "zero-close": (lambda f: _damage(f, "XLK", LAST_BAR, 0.0), "missing, NaN, infinite, zero or negative price"),
    "inf-close": (lambda f: _damage(f, "XLK", LAST_BAR, float("inf")), "missing, NaN, infinite, zero or negative price"),
    "truncated-parquet": (None, "cannot read bars.parquet"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(SIM_BAD_FILES))
def test_bad_data_files_stop_the_cycle_with_an_error_event_then_good_files_trade(tmp_path, monkeypatch, case):
    damage, message = SIM_BAD_FILES[case]
    good = bundled_bars().filter(pl.col("date") >= date(2022, 1, 1))
    data = tmp_path / "bars.parquet"
    if damage is None:
        good.write_parquet(data)
        data.write_bytes(data.read_bytes()[:4096])
    else:
        damage(good).write_parquet(data)
    first = _sim_run_once(tmp_path, data, DAYS[0].day, monkeypatch)
    second = _sim_run_once(tmp_path, data, DAYS[0].day, monkeypatch)
    assert first.exit_code == second.exit_code  # stable
    assert message in first.output
    ws = _journal(tmp_path)
    if case == "truncated-parquet":
        # unreadable before anything runs (the plan's symbols are read from it): one line, exit 1
        assert first.exit_code == 1 and first.output.startswith("error: cannot read bars.parquet"), first.output
        assert len(first.output.strip().splitlines()) == 1
        assert not ws.db.exists()
    else:
        # readable, then refused by the account's cycle: an ERROR event each time, no order, exit 1
        assert first.exit_code == 1 and "1 of 1 account(s) could not trade: paper-sim" in first.output, first.output
        assert ws.journal_orders() == []
        failed = [e for e in ws.events("paper-sim") if e[0] == "cycle.failed"]
        assert len(failed) == 2 and all(e[1] == "ERROR" and message in e[2] for e in failed), ws.events()
    good.write_parquet(data)
    third = _sim_run_once(tmp_path, data, DAYS[0].day, monkeypatch)
    assert third.exit_code == 0, third.output
    assert ws.journal_orders() and all(o["status"] == "filled" for o in ws.journal_orders())


@pytest.mark.timeout(60)
def test_a_data_file_missing_a_configured_symbol_is_a_config_error_and_nothing_runs(tmp_path, monkeypatch):
    data = tmp_path / "bars.parquet"
    bundled_bars().filter((pl.col("date") >= date(2022, 1, 1)) & (pl.col("symbol") != "XLK")).write_parquet(data)
    result = _sim_run_once(tmp_path, data, DAYS[0].day, monkeypatch)
    assert result.exit_code == 4, result.output
    assert "unknown symbol 'XLK' (not in the available market data, which holds: SPY, TLT, XLB, XLC, XLE, XLF, XLI, XLP, " \
        "XLRE, XLU, XLV, XLY)" in result.output
    assert not (tmp_path / "journal.db").exists()


@pytest.mark.timeout(60)
def test_a_bar_far_outside_the_collar_is_not_traded_on_and_is_reported(tmp_path, monkeypatch):
    data = tmp_path / "bars.parquet"
    BAD_ALPACA_DATA["outside-collar"](bundled_bars().filter(pl.col("date") >= date(2022, 1, 1))).write_parquet(data)
    _sim_run_once(tmp_path, data, DAYS[0].day, monkeypatch)
    ws = _journal(tmp_path)
    assert ws.journal_orders() == []  # a suspect bar moves the rankings too: nothing is traded
    rejected = [e for e in ws.events("paper-sim") if e[0] == "data.rejected"]
    assert rejected and rejected[0][1] == "WARN" and "XLE" in rejected[0][2] and "price collar" in rejected[0][2], ws.events()


# --- the scheduled loop tries a failed cycle again ------------------------------------------------


@pytest.mark.timeout(90)
def test_the_loop_retries_a_cycle_refused_on_bad_data_and_trades_once_the_data_is_good(tmp_path):
    good = bundled_bars()
    desk = Desk(tmp_path, BAD_ALPACA_DATA["zero-close"](good))
    day = DAYS[0]
    clock = SkipClock(ny(day.day, 9, 0), day.close + timedelta(minutes=30))
    corrected = ny(day.day, 10, 10)  # fixed between the first try (10:00) and the second (10:15)

    def provider_fixes(old, new):
        desk.clock["now"] = new
        if old < corrected <= new:
            desk.serve(good)

    clock.hooks.append(provider_fixes)
    try:
        with environ(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET), quick_broker():
            loop = run_loop(desk.ws, clock)
        assert loop["status"] == "stopped", loop
        tries = [line for line in loop["echo"] if line.startswith(f"{day.day} alp:")]
        assert len(tries) == 2 and "failed" in tries[0] and "XLK" in tries[0] and "order(s) sent" in tries[1], tries
        rejected = [e for e in desk.problems() if e[0] == "data.rejected"]
        assert len(rejected) == 1 and rejected[0][1] == "WARN", desk.problems()
        placed = desk.orders_on(day.day)
        assert placed and min(o["created_at"] for o in placed) >= corrected.isoformat()[:19], placed
        assert target_error(desk.fake, day.day) == []
        assert ledger(desk.ws, desk.fake, "alp").ok()
    finally:
        desk.close()


@pytest.mark.timeout(120)
def test_a_monthly_rebalance_that_failed_all_session_is_owed_to_the_next_session_across_a_restart(tmp_path):
    first, second = sessions_from(date(2024, 3, 1), 2)  # Fri 1 March: the monthly rebalance; Mon 4 March
    now = {"t": ny(first.day, 9, 0)}
    fake = new_chaos_fake(now=lambda: now["t"], bars=bundled_bars())
    ws = make_workspace(tmp_path)  # the shipped, monthly strategies
    ws.write_accounts(alpaca_account("alp", fake.url))

    def loop_over(session):
        clock = SkipClock(ny(session.day, 9, 0), session.close + timedelta(minutes=30))
        clock.hooks.append(lambda old, new: now.__setitem__("t", new))
        with environ(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET), quick_broker():
            return run_loop(ws, clock)  # a new process each session, as after a restart

    try:
        fake.inject("500", method="GET", path="/v2/stocks/bars", count=None)  # data down all of 1 March
        down = loop_over(first)
        tries = [line for line in down["echo"] if line.startswith(f"{first.day} alp:")]
        assert len(tries) >= 3 and all(": failed: " in t for t in tries), tries
        owed = [e for e in ws.events("alp") if e[0] == "cycle.owed"]
        assert len(owed) == 1 and owed[0][1] == "WARN" and "SectorRotationModel_v1" in owed[0][2], ws.events("alp")
        assert fake.orders() == []
        fake.clear_faults()
        back = loop_over(second)  # 4 March is not a scheduled rebalance: it trades only what is owed
        cycles = [line for line in back["echo"] if " alp: " in line]
        assert len(cycles) == 1 and cycles[0].startswith(f"{second.day} alp: ") and "order(s) sent" in cycles[0], cycles
        assert {o["created_at"][:10] for o in fake.orders()} == {str(second.day)}
        assert target_error(fake, second.day) == []
        assert ledger(ws, fake, "alp").ok()
        assert ws.query("SELECT state FROM guard_state WHERE scope = 'owed'") == [("[]",)]
    finally:
        fake.stop()


@pytest.mark.timeout(90)
def test_the_first_cycle_check_guards_a_plans_first_trades_not_every_restart(tmp_path):
    desk = Desk(tmp_path)
    desk.ws.write_accounts(alpaca_account("alp", desk.fake.url, extra="risk: {max_first_cycle_turnover: 0.0001}"))

    def once(day, *, confirm):
        at = ny(day, 10, 30)
        desk.clock["now"] = at
        with environ(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET), quick_broker():
            return run_loop(desk.ws, SkipClock(at, at + timedelta(hours=1)), once=True, confirm=confirm)["accounts"]["alp"]

    try:
        assert once(DAYS[0].day, confirm=False).startswith("halted: the first cycle would trade")
        assert desk.fake.orders() == []
        assert desk.ws.botctl("resume").returncode == 0
        assert "order(s) sent" in once(DAYS[0].day, confirm=True)  # the operator confirmed with --yes
        # later runs of the same plan on this account (restarts, a daily --once) are not held again
        assert "order(s) sent" in once(DAYS[1].day, confirm=False)
        assert "order(s) sent" in once(DAYS[2].day, confirm=False)
        assert len([e for e in desk.ws.events("alp") if e[0] == "first_cycle.halted"]) == 1
        assert ledger(desk.ws, desk.fake, "alp").ok()
    finally:
        desk.close()


@pytest.mark.timeout(60)
def test_an_infinite_adjusted_close_stops_a_replay_with_one_line_naming_it(tmp_path, monkeypatch):
    """It used to run and fail writing the journal ("NOT NULL constraint failed: nav.leverage")."""
    data = tmp_path / "bars.parquet"
    frame = bundled_bars().filter(pl.col("date") >= date(2022, 1, 1))
    hit = (pl.col("symbol") == "XLK") & (pl.col("date") == date(2023, 6, 1))
    frame.with_columns(pl.when(hit).then(float("inf")).otherwise(pl.col("adj_close")).alias("adj_close")).write_parquet(data)
    ws = make_workspace(tmp_path)
    ws.write_accounts("paper-sim:\n  broker: sim\n  models: [SectorRotationModel_v1]")
    monkeypatch.setenv("BOTCTL_HEALTH_PORT", "0")
    result = runner.invoke(app, ["--config-dir", str(tmp_path / "config"), "--db", str(tmp_path / "journal.db"),
                                 "--data", str(data), "run", "--replay", "2023-05-01:2023-07-31"])
    assert result.exit_code == 1, result.output
    assert no_traceback(result.output) and len(result.output.strip().splitlines()) == 1, result.output
    assert "bars.parquet has 1 row(s) with a missing, NaN, infinite, zero or negative price (first: XLK 2023-06-01, " \
           "adj_close inf)" in result.output
