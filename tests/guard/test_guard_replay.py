"""The risk guard end to end through the real command: replays where a breaker trips, backtests
that count blocks by rule, `plan` showing the limits, all read back from the SQLite journal.

The configs are written into tmp_path: the shipped strategies.yaml and an accounts.yaml like
the shipped one with the risk limits under test.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from botctl.cli.app import app
from botctl.spec.model import RiskSpec

ROOT = Path(__file__).resolve().parents[2]
ENV = {"BOTCTL_HEALTH_PORT": "0"}  # no health server from inside the tests

ACCOUNTS = """\
accounts:
  rotation-sim:
    broker: sim
    mode: paper
    starting_cash: 100000
    models: [SectorRotationModel_v1, SectorRotationBull_v1, SectorRotationBear_v1]
    sim: {{fill: open, commission_bps: 0, slippage_bps: 2, margin: 2.0, borrow_rate: 0.0}}
{rotation_risk}
  adaptive-sim:
    broker: sim
    mode: paper
    starting_cash: 100000
    models:
      - {{name: SectorRotationAdaptive_v3, budget: 1.0}}
    sim: {{fill: open, commission_bps: 0, slippage_bps: 2, margin: 2.0, borrow_rate: 0.0}}
{adaptive_risk}
"""


def make_config(folder: Path, *, rotation_risk: str = "", adaptive_risk: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "strategies.yaml", folder / "strategies.yaml")
    (folder / "accounts.yaml").write_text(ACCOUNTS.format(
        rotation_risk=f"    risk: {rotation_risk}" if rotation_risk else "",
        adaptive_risk=f"    risk: {adaptive_risk}" if adaptive_risk else "",
    ))
    return folder


def botctl(config: Path, db: Path, *args: str):
    result = CliRunner().invoke(app, ["--config-dir", str(config), "--db", str(db), *args], env=ENV)
    assert result.exit_code == 0, result.output
    return result


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def query(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- a replay in which one account's daily-loss breaker trips --------------------------------

TIGHT = "{max_daily_loss: 0.03}"


@pytest.fixture(scope="module")
def tripped_replay(tmp_path_factory):
    """adaptive-sim (1.25x) with a 3% daily-loss limit, rotation-sim with the defaults, over the
    2020 crash: adaptive-sim trips, rotation-sim trades on."""
    base = tmp_path_factory.mktemp("replay")
    config = make_config(base / "config", adaptive_risk=TIGHT)
    db = base / "botctl.db"
    summary = last_json(botctl(config, db, "run", "--replay", "2020-01-01:2020-06-30", "--json"))
    return config, db, summary


def trip_of(db: Path, account: str = "adaptive-sim") -> tuple[datetime, dict]:
    (when, details), = query(db, "select ts_event, details from events where type = 'breaker.tripped' and account = ?",
                             account)
    return ts(when), json.loads(details)


def test_the_breaker_trip_is_an_event_and_a_persisted_halt_for_that_account_only(tripped_replay):
    _, db, summary = tripped_replay
    assert summary["status"] == "finished"
    rows = query(db, "select account, severity, subsystem, message, details from events where type = 'breaker.tripped'")
    assert len(rows) == 1
    account, severity, subsystem, message, details = rows[0]
    assert (account, severity, subsystem) == ("adaptive-sim", "CRITICAL", "guard")
    assert json.loads(details)["rule"] == "max_daily_loss"
    assert "3.0%" in message
    controls = query(db, "select account, halted, reason, who, flatten, acked_at from control")
    assert [c[0] for c in controls if c[1]] == ["adaptive-sim"]  # only that account is halted
    (_, halted, reason, who, flatten, acked_at), = [c for c in controls if c[0] == "adaptive-sim"]
    assert halted == 1 and reason.startswith("max_daily_loss:") and "3.0%" in reason
    assert "max_daily_loss" in who and flatten == 0
    assert acked_at is not None  # the runtime acted on the halt (cancel open orders) and said so
    acted = query(db, "select ts_event from events where type = 'kill.orders_canceled' and account = 'adaptive-sim'")
    assert len(acted) == 1 and ts(acted[0][0]) >= trip_of(db)[0]


def test_the_trip_is_at_the_first_close_that_lost_more_than_the_limit(tripped_replay):
    _, db, _ = tripped_replay
    when, _ = trip_of(db)
    navs = [(ts(t), nav) for t, nav in query(db, "select ts_event, nav from nav where account = 'adaptive-sim' "
                                                  "order by ts_event")]
    first_bad = next(t for (_, prev), (t, nav) in zip(navs, navs[1:]) if nav / prev - 1 < -0.03)
    assert when == first_bad
    assert datetime(2020, 2, 1).date() < when.date() < datetime(2020, 4, 1).date()


def test_the_halted_account_places_no_order_after_the_trip_while_the_other_trades_on(tripped_replay):
    _, db, summary = tripped_replay
    when, _ = trip_of(db)
    orders = query(db, "select account, ts_init from orders")
    adaptive = [ts(t) for a, t in orders if a == "adaptive-sim"]
    rotation = [ts(t) for a, t in orders if a == "rotation-sim"]
    assert adaptive and max(adaptive) < when
    assert len({t.date() for t in rotation if t > when}) >= 3  # the monthly rebalances go on
    assert summary["orders"]["adaptive-sim"] == len(adaptive)
    # Holdings are kept (no flatten was asked for) and still marked every session.
    last_marks = query(db, "select max(ts_event) from nav group by account")
    assert len({m for (m,) in last_marks}) == 1


def test_the_guard_state_is_persisted_with_the_high_water_mark(tripped_replay):
    _, db, summary = tripped_replay
    rows = dict(query(db, "select account, state from guard_state where scope = ?", summary["run_id"]))
    assert set(rows) == {"rotation-sim", "adaptive-sim"}
    for account, raw in rows.items():
        state = json.loads(raw)
        (peak, last), = query(db, "select max(nav), (select nav from nav where account = ?1 order by ts_event desc "
                                  "limit 1) from nav where account = ?1", account)
        assert state["high_water_mark"] == pytest.approx(peak)
        assert state["last_close_nav"] == pytest.approx(last)


def test_a_restarted_replay_keeps_the_breaker_halt(tripped_replay, tmp_path):
    config, db, _ = tripped_replay
    copy = tmp_path / "again.db"
    shutil.copy(db, copy)
    summary = last_json(botctl(config, copy, "run", "--replay", "2020-07-01:2020-09-30", "--json"))
    orders = dict(query(copy, "select account, count(*) from orders where run_id = ? group by account",
                        summary["run_id"]))
    assert orders.get("adaptive-sim", 0) == 0 and orders["rotation-sim"] > 0
    (halted, reason), = query(copy, "select halted, reason from control where account = 'adaptive-sim'")
    assert halted == 1 and reason.startswith("max_daily_loss:")


# --- backtests: blocks counted by rule, breakers reported -------------------------------------


@pytest.fixture(scope="module")
def blocked_backtest(tmp_path_factory):
    base = tmp_path_factory.mktemp("backtest")
    config = make_config(base / "config", rotation_risk="{max_orders_per_cycle: 2}", adaptive_risk=TIGHT)
    db = base / "botctl.db"
    body = json.loads(botctl(config, db, "backtest", "--start", "2020-01-01", "--end", "2020-12-31", "--json").stdout)
    return config, base / "botctl-backtests.db", body  # backtests are journaled beside the journal


def test_backtest_json_counts_blocks_by_rule(blocked_backtest):
    _, db, body = blocked_backtest
    rotation = body["accounts"]["rotation-sim"]
    assert set(rotation["blocked"]) == {"max_orders_per_cycle"} and rotation["blocked"]["max_orders_per_cycle"] > 0
    assert rotation["halted"] is None
    for name in ("SectorRotationModel_v1", "SectorRotationBull_v1", "SectorRotationBear_v1"):
        assert set(body["models"][name]["blocked"]) <= {"max_orders_per_cycle"}  # model books share the limits
    journaled = query(db, "select count(*) from events where type = 'gate.blocked' and account = 'rotation-sim'")[0][0]
    assert journaled == rotation["blocked"]["max_orders_per_cycle"]


def test_gate_blocked_events_carry_the_rule_the_numbers_and_the_order(blocked_backtest):
    _, db, _ = blocked_backtest
    events = query(db, "select ts_event, severity, subsystem, symbol, message, details from events "
                       "where type = 'gate.blocked' and account = 'rotation-sim'")
    assert events
    placed = {(t, s, side) for t, s, side in query(db, "select ts_init, symbol, side from orders "
                                                        "where account = 'rotation-sim'")}
    for when, severity, subsystem, symbol, message, details in events:
        details = json.loads(details)
        assert (severity, subsystem) == ("WARN", "guard")
        assert details["rule"] == "max_orders_per_cycle"
        assert (details["limit"], details["value"]) == (2.0, 3.0)
        order = details["order"]
        assert set(order) >= {"side", "qty", "symbol", "ref_price"}
        assert order["symbol"] == symbol and order["qty"] > 0 and order["ref_price"] > 0
        assert symbol in message and "blocked" in message
        # A blocked order never reaches the broker.
        assert (when, symbol, order["side"]) not in placed


def test_backtest_respects_the_per_cycle_limit_in_what_it_placed(blocked_backtest):
    _, db, _ = blocked_backtest
    per_cycle = query(db, "select ts_init, count(*) from orders where account = 'rotation-sim' group by ts_init")
    assert per_cycle and max(n for _, n in per_cycle) == 2


def test_backtest_reports_a_tripped_breaker(blocked_backtest):
    _, db, body = blocked_backtest
    adaptive = body["accounts"]["adaptive-sim"]
    assert adaptive["halted"] and adaptive["halted"].startswith("max_daily_loss on 2020-")
    assert adaptive["blocked"] == {}
    (when, details), = query(db, "select ts_event, details from events where type = 'breaker.tripped' "
                                 "and account = 'adaptive-sim'")
    assert json.loads(details)["rule"] == "max_daily_loss"
    (trip,) = adaptive["breaker_trips"]
    assert trip["rule"] == "max_daily_loss" and trip["at"] == when[:10] and trip["resumed_at"] is None
    assert trip["limit"] == -0.03 and trip["value"] < -0.03
    # Halted to the end: every scheduled rebalance after the trip is listed as skipped.
    assert trip["skipped_rebalances"] and all(day > trip["at"] for day in trip["skipped_rebalances"])
    assert body["breakers"] == "halt" and body["accounts"]["rotation-sim"]["breaker_trips"] == []
    later = query(db, "select count(*) from orders where account = 'adaptive-sim' and ts_init > ?", when)[0][0]
    assert later == 0
    assert query(db, "select count(*) from events where type = 'breaker.tripped' and account = 'rotation-sim'") == [(0,)]


def test_backtest_text_output_mentions_blocks_and_halts(blocked_backtest, tmp_path):
    config, _, _ = blocked_backtest
    out = botctl(config, tmp_path / "x.db", "backtest", "--start", "2020-01-01", "--end", "2020-12-31",
                 "--no-journal").stdout
    assert re.search(r"rotation-sim: risk guard blocked \d+ order\(s\)", out)
    assert re.search(r"adaptive-sim: circuit breaker max_daily_loss tripped on 2020-\d\d-\d\d .*HALTED to the end", out)
    assert re.search(r"\d+ scheduled rebalance\(s\) skipped", out)


def test_breakers_resume_next_session_trades_on_after_each_trip(blocked_backtest, tmp_path):
    config, _, halted = blocked_backtest
    body = json.loads(botctl(config, tmp_path / "x.db", "backtest", "--start", "2020-01-01", "--end", "2020-12-31",
                             "--json", "--no-journal", "--breakers", "resume-next-session").stdout)
    adaptive = body["accounts"]["adaptive-sim"]
    first = halted["accounts"]["adaptive-sim"]["breaker_trips"][0]
    assert adaptive["breaker_trips"][0]["at"] == first["at"]  # the same first trip, then resumed
    assert adaptive["halted"] is None
    for trip in adaptive["breaker_trips"]:
        assert trip["resumed_at"] > trip["at"] and trip["skipped_rebalances"] == []
    assert adaptive["trades"] > halted["accounts"]["adaptive-sim"]["trades"]


def test_breakers_off_never_trips_and_a_bad_mode_is_a_usage_error(blocked_backtest, tmp_path):
    config, _, _ = blocked_backtest
    body = json.loads(botctl(config, tmp_path / "x.db", "backtest", "--start", "2020-01-01", "--end", "2020-12-31",
                             "--json", "--no-journal", "--breakers", "off").stdout)
    assert all(not a["breaker_trips"] and a["halted"] is None for a in body["accounts"].values())
    bad = CliRunner().invoke(app, ["--config-dir", str(config), "--db", str(tmp_path / "x.db"), "backtest",
                                   "--breakers", "sometimes"], env=ENV)
    assert bad.exit_code == 2 and "--breakers expects one of halt, resume-next-session, off" in bad.output


# --- plan shows the limits -------------------------------------------------------------------


def test_plan_json_shows_each_accounts_risk(tmp_path):
    config = make_config(tmp_path / "config", rotation_risk="{max_weight: 0.4, cooldown_minutes: 15}",
                         adaptive_risk=TIGHT)
    body = json.loads(botctl(config, tmp_path / "x.db", "plan", "--json").stdout)
    risks = {a["id"]: a["risk"] for a in body["accounts"]}
    defaults = msgspec.to_builtins(RiskSpec())
    assert risks["rotation-sim"] == {**defaults, "max_weight": 0.4, "cooldown_minutes": 15}
    assert risks["adaptive-sim"] == {**defaults, "max_daily_loss": 0.03}


def test_plan_json_shows_the_safe_defaults_for_the_shipped_config(tmp_path):
    body = json.loads(botctl(ROOT, tmp_path / "x.db", "plan", "--json").stdout)
    defaults = msgspec.to_builtins(RiskSpec())
    assert all(a["risk"] == defaults for a in body["accounts"])


def test_plan_text_shows_the_risk_limits(tmp_path):
    config = make_config(tmp_path / "config", adaptive_risk=TIGHT)
    out = botctl(config, tmp_path / "x.db", "plan").stdout
    assert re.search(r"daily[ _]loss", out, re.I) and re.search(r"leverage", out, re.I)


# --- buying power and rejects: a margin-1.0 account asked for 1.3x ---------------------------

FIXED_STRATEGIES = """\
benchmark: SPY
universes:
  pair: [TLT, XLK]
strategies:
  FixedPair:
    universe: pair
    rebalance: monthly
    steps:
      - select_all: {}
      - weigh_fixed: {weights: {TLT: 1.2, XLK: 0.1}}
"""

FIXED_ACCOUNTS = """\
accounts:
  fixed-sim:
    broker: sim
    starting_cash: 100000
    models: [FixedPair]
    sim: {fill: open, margin: 1.0}
    risk: {max_weight: 2.0, max_order_pct_nav: 2.0, max_rejects: 1}
"""


@pytest.fixture(scope="module")
def cash_account_backtest(tmp_path_factory):
    """TLT at 120% of NAV sorts first and exceeds the 1x buying power; XLK at 10% fits."""
    config = tmp_path_factory.mktemp("cash") / "config"
    config.mkdir()
    (config / "strategies.yaml").write_text(FIXED_STRATEGIES)
    (config / "accounts.yaml").write_text(FIXED_ACCOUNTS)
    db = config.parent / "botctl.db"
    body = json.loads(botctl(config, db, "backtest", "--start", "2020-01-01", "--end", "2020-03-31", "--json").stdout)
    return config.parent / "botctl-backtests.db", body  # backtests are journaled beside the journal


def test_a_buy_beyond_buying_power_is_blocked_by_the_guard(cash_account_backtest):
    db, body = cash_account_backtest
    assert body["accounts"]["fixed-sim"]["blocked"].get("buying_power", 0) >= 1
    assert query(db, "select count(*) from orders where status = 'rejected'") == [(0,)]


# With the guard's buying-power rule the simulated broker has nothing left to reject, so the
# mid-cycle trip (nothing sent after a reject trips max_rejects) is tested on a Book in
# test_guard_breakers.py.
