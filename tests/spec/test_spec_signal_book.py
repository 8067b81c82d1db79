"""Signal-book steps: impossible or contradictory settings are config errors at FILE:LINE:COL."""

from __future__ import annotations

from spec_support import assert_problems, load, problems, y

from botctl.spec.plan import compile_plan

ACCOUNTS = y("""
    accounts:
      main:
        models: [Book]
""")


def book(steps: str, extra: str = "") -> str:
    return y("""
        strategies:
          Book:
            universe: [SPY, TLT, XLK]
        """) + extra + "    steps:\n" + "".join(f"      - {line}\n" for line in steps.strip().splitlines())


GOOD = """
score_breakout: {lookback_days: 20}
select_top_scores: {min_score: 0.0, max_positions: 2}
exit_stop_loss: {pct: 0.05}
"""


def test_a_valid_book_compiles_to_a_daily_schedule():
    plan = compile_plan(load(book(GOOD), ACCOUNTS))
    assert plan.accounts[0].models[0].schedule.every == "daily"


def test_a_ladder_selling_more_than_everything():
    found = problems(book(GOOD + "exit_take_profit: {ladder: [{at: 0.02, sell: 0.5}, {at: 0.05, sell: 0.6}]}"), ACCOUNTS)
    assert_problems(found, {"strategies.yaml:8:28: strategies.Book.steps[3].exit_take_profit.ladder":
                            "the rungs sell 110.0% of the position, more than 100%"})


def test_ladder_gains_must_rise_and_sell_fractions():
    found = problems(book(GOOD + "exit_take_profit: {ladder: [{at: 0.05, sell: 0.3}, {at: 0.02, sell: 0}]}"), ACCOUNTS)
    assert_problems(found, {
        "strategies.yaml:8:61: strategies.Book.steps[3].exit_take_profit.ladder[1].at": "rising rung by rung",
        "strategies.yaml:8:71: strategies.Book.steps[3].exit_take_profit.ladder[1].sell": "(0, 1]",
    })


def test_stops_of_zero_or_everything():
    found = problems(book(GOOD.replace("pct: 0.05", "pct: 0") + "exit_trailing_stop: {pct: 1.0}"), ACCOUNTS)
    assert_problems(found, {
        "strategies.yaml:7:26: strategies.Book.steps[2].exit_stop_loss.pct": "a stop is a fall in (0, 1)",
        "strategies.yaml:8:30: strategies.Book.steps[3].exit_trailing_stop.pct": "got 1",
    })


def test_no_slots():
    found = problems(book(GOOD.replace("max_positions: 2", "max_positions: 0")), ACCOUNTS)
    assert_problems(found, {"strategies.yaml:6:45: strategies.Book.steps[1].select_top_scores.max_positions":
                            "must be at least 1, got 0"})


def test_a_book_needs_scores_and_one_selection_and_no_rotation_steps():
    found = problems(book("select_top_scores: {}\nselect_top_scores: {}\nweigh_equally: {}\nexit_stop_loss: {}"), ACCOUNTS)
    assert_problems(found, {
        "strategies.yaml:4:5: strategies.Book.steps": "a signal book needs exactly one select_top_scores",
        "strategies.yaml:7:9: strategies.Book.steps[2].weigh_equally": "a rebalancer's step",
    })
    assert "a signal book needs a score_* step" in found["strategies.yaml:4:5: strategies.Book.steps"]


def test_a_book_on_a_monthly_schedule():
    found = problems(book(GOOD, "    rebalance: monthly\n"), ACCOUNTS)
    assert_problems(found, {"strategies.yaml:4:5: strategies.Book.rebalance": "its schedule is daily"})


def test_exit_regime_without_a_gate_and_a_bad_band():
    found = problems(book(GOOD + "exit_regime: {}\nexit_time: {sessions: 0, band: 1.5}"), ACCOUNTS)
    assert_problems(found, {
        "strategies.yaml:8:9: strategies.Book.steps[3].exit_regime": "add a when_regime step",
        "strategies.yaml:9:21: strategies.Book.steps[4].exit_time.sessions": "must be 1..2520 sessions, got 0",
        "strategies.yaml:9:34: strategies.Book.steps[4].exit_time.band": "must be in (0, 1)",
    })


def test_unknown_keys_in_a_rung_are_reported():
    found = problems(book(GOOD + "exit_take_profit: {ladder: [{at: 0.02, sel: 0.5}]}"), ACCOUNTS)
    assert any("unknown key" in m for m in found.values()) and any("missing required key 'sell'" in m for m in found.values())
