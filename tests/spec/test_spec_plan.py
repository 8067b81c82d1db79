"""Compiling the plan: budgets (equal split, explicit, redistributed when filtered), universes,
schedules, account selection, and a plan id that only changes when an input does."""

from __future__ import annotations

import pytest
from spec_support import load, y

from botctl.adapters.file_data import available_symbols
from botctl.errors import UsageError
from botctl.spec.model import ScheduleSpec
from botctl.spec.plan import compile_plan

STRATEGIES = y("""
    benchmark: SPY
    universes:
      core: [XLK, XLF, TLT]
    strategies:
      A:
        universe: core
        steps: [select_all]
      B:
        universe: core
        rebalance: {every: weekly, day: 2, after_open_minutes: 45}
        steps: [{when_regime: {benchmark: SPY}}, select_all, {fallback: {to: XLE}}]
      C:
        universe: [TLT]
        rebalance: quarterly
        steps: [select_all]
""")

ACCOUNTS = y("""
    accounts:
      equal:
        models: [A, B, C]
      mixed:
        starting_cash: 50000
        models:
          - {name: A, budget: 0.5}
          - B
          - C
      partial:
        models:
          - {name: A, budget: 0.6}
          - {name: C, budget: 0.2}
      live:
        broker: alpaca
        mode: live
        data: alpaca
        models: [C]
""")


def plan(strategies_yaml: str = STRATEGIES, accounts_yaml: str = ACCOUNTS, **selection):
    return compile_plan(load(strategies_yaml, accounts_yaml), **selection)


def budgets(p, account: str) -> dict[str, float]:
    return {m.name: m.budget for m in p.account(account).models}


def test_models_without_budgets_split_the_account_equally():
    assert budgets(plan(), "equal") == pytest.approx({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})


def test_unbudgeted_models_share_what_the_budgeted_ones_leave():
    assert budgets(plan(), "mixed") == pytest.approx({"A": 0.5, "B": 0.25, "C": 0.25})


def test_explicit_budgets_under_100_percent_leave_the_rest_in_cash():
    assert budgets(plan(), "partial") == pytest.approx({"A": 0.6, "C": 0.2})


def test_filtering_models_redistributes_the_account_budget_to_the_survivors():
    p = plan(models=["A"])
    assert budgets(p, "equal") == pytest.approx({"A": 1.0})
    assert budgets(p, "mixed") == pytest.approx({"A": 1.0})
    # The invested 80% stays 80%: cash the user chose to keep is not spent by filtering.
    assert budgets(p, "partial") == pytest.approx({"A": 0.8})
    # An account that runs none of the kept models drops out of the plan.
    assert [a.id for a in p.accounts] == ["equal", "mixed", "partial"]


def test_filtering_to_two_models_keeps_their_proportions():
    p = plan(models=["A", "C"])
    assert budgets(p, "equal") == pytest.approx({"A": 0.5, "C": 0.5})
    assert budgets(p, "mixed") == pytest.approx({"A": 1 * 2 / 3, "C": 1 / 3})
    assert budgets(p, "partial") == pytest.approx({"A": 0.6, "C": 0.2})


def test_filtering_accounts():
    p = plan(accounts=["live", "equal"])
    assert [a.id for a in p.accounts] == ["equal", "live"]


def test_unknown_models_and_accounts_in_a_selection_are_usage_errors():
    with pytest.raises(UsageError, match="unknown model 'Z'"):
        plan(models=["Z"])
    with pytest.raises(UsageError, match="unknown account 'nope'"):
        plan(accounts=["nope"])
    with pytest.raises(UsageError, match="leaves no account"):
        plan(models=["B"], accounts=["live"])


def test_each_account_carries_broker_mode_and_the_union_of_its_models_symbols():
    p = plan()
    equal = p.account("equal")
    assert (equal.broker, equal.mode, equal.data, equal.starting_cash) == ("sim", "paper", "file", 100_000.0)
    # Universes plus the symbols steps read (B's regime benchmark and fallback).
    assert equal.symbols == ("SPY", "TLT", "XLE", "XLF", "XLK")
    live = p.account("live")
    assert (live.broker, live.mode, live.data) == ("alpaca", "live", "alpaca")
    assert (live.api_key_env, live.secret_key_env) == ("ALPACA_API_KEY", "ALPACA_SECRET_KEY")
    assert live.symbols == ("TLT",)
    assert equal.api_key_env is None
    assert p.symbols == ("SPY", "TLT", "XLE", "XLF", "XLK")


def test_models_carry_their_universe_in_written_order_and_a_full_schedule():
    models = {m.name: m for m in plan().account("equal").models}
    assert models["A"].universe == ("XLK", "XLF", "TLT")
    assert models["A"].schedule == ScheduleSpec(every="monthly", day=1, after_open_minutes=30)
    assert models["B"].schedule == ScheduleSpec(every="weekly", day=2, after_open_minutes=45)
    assert models["C"].schedule == ScheduleSpec(every="quarterly", day=1, after_open_minutes=30)
    assert [s.__struct_config__.tag for s in models["B"].steps] == ["when_regime", "select_all", "fallback"]


def test_the_shipped_plan(repo_root):
    config = load((repo_root / "strategies.yaml").read_text(), (repo_root / "accounts.yaml").read_text(),
                  known=available_symbols())
    p = compile_plan(config)
    assert [a.id for a in p.accounts] == ["rotation-sim", "adaptive-sim", "signals-sim"]
    assert budgets(p, "rotation-sim") == pytest.approx(
        {"SectorRotationModel_v1": 1 / 3, "SectorRotationBull_v1": 1 / 3, "SectorRotationBear_v1": 1 / 3})
    assert budgets(p, "adaptive-sim") == {"SectorRotationAdaptive_v3": 1.0}
    assert p.account("adaptive-sim").models[0].schedule == ScheduleSpec(every="monthly", day=1, after_open_minutes=30)
    # the signal book checks its exits every session
    assert p.account("signals-sim").models[0].schedule == ScheduleSpec(every="daily", day=1, after_open_minutes=30)


# The plan id ----------------------------------------------------------------------------------

def test_the_same_inputs_give_the_same_plan_id():
    first, second = plan(), plan()
    assert first.plan_id == second.plan_id
    assert len(first.plan_id) == 12 and int(first.plan_id, 16) >= 0
    assert first == second


def test_comments_and_layout_do_not_change_the_plan_id():
    reformatted = "# a comment\n" + STRATEGIES.replace("[XLK, XLF, TLT]", "\n    - XLK\n    - XLF   # financials\n    - TLT")
    assert plan(reformatted).plan_id == plan().plan_id


@pytest.mark.parametrize("change", [
    ("strategies", "core: [XLK, XLF, TLT]", "core: [XLK, XLF, XLE]"),
    ("strategies", "day: 2, after_open_minutes: 45", "day: 3, after_open_minutes: 45"),
    ("strategies", "rebalance: quarterly", "rebalance: monthly"),
    ("strategies", "{fallback: {to: XLE}}", "{fallback: {to: cash}}"),
    ("strategies", "benchmark: SPY\n", "benchmark: TLT\n"),
    ("accounts", "{name: A, budget: 0.6}", "{name: A, budget: 0.7}"),
    ("accounts", "starting_cash: 50000", "starting_cash: 60000"),
    ("accounts", "mode: live", "mode: paper"),
    ("accounts", "models: [C]", "models: [C, A]"),
], ids=["universe", "schedule-day", "frequency", "step-param", "benchmark", "budget", "cash", "mode", "models"])
def test_any_changed_input_changes_the_plan_id(change):
    file, old, new = change
    strategies, accounts = STRATEGIES, ACCOUNTS
    if file == "strategies":
        assert old in strategies
        strategies = strategies.replace(old, new)
    else:
        assert old in accounts
        accounts = accounts.replace(old, new)
    assert plan(strategies, accounts).plan_id != plan().plan_id


def test_a_selection_is_part_of_the_plan_id():
    ids = {plan().plan_id, plan(models=["A"]).plan_id, plan(accounts=["equal"]).plan_id}
    assert len(ids) == 3
    assert plan(models=["A"]).plan_id == plan(models=["A"]).plan_id
