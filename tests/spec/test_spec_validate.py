"""Semantic rules: references, budgets, leverage, symbols, schedules and secrets. Each problem is
asserted at its exact FILE:LINE:COL and key path, and all of them are reported in one pass."""

from __future__ import annotations

import pytest
from spec_support import STRATEGIES, assert_problems, load, problems, y

from botctl.errors import ConfigError

ONE_MODEL = y("""
    universes: {core: [SPY, TLT]}
    strategies:
      Momo: {universe: core, steps: [select_all]}
      Hold: {universe: [TLT], steps: [select_all]}
""")


# References between files and names -----------------------------------------------------------

def test_an_account_naming_an_unknown_model_lists_the_known_ones():
    found = problems(ONE_MODEL, y("""
        accounts:
          main:
            models: [Momo, Ghost]
    """))
    assert_problems(found, {
        "accounts.yaml:3:20: accounts.main.models[1]": "unknown model 'Ghost' (defined in strategies.yaml: Hold, Momo)",
    })


def test_an_unknown_model_given_as_a_mapping_points_at_the_entry():
    found = problems(ONE_MODEL, y("""
        accounts:
          main:
            models:
              - {name: Momo, budget: 0.5}
              - {name: Ghost, budget: 0.5}
    """))
    assert_problems(found, {"accounts.yaml:5:9: accounts.main.models[1]": "unknown model 'Ghost'"})


def test_a_strategy_naming_an_unknown_universe():
    found = problems(y("""
        universes: {core: [SPY]}
        strategies:
          Momo:
            universe: sectors
            steps: [select_all]
    """), "accounts:\n  main:\n    models: [Momo]\n")
    assert_problems(found, {"strategies.yaml:4:5: strategies.Momo.universe": "unknown universe 'sectors' (known: core)"})


def test_a_model_listed_twice_in_one_account():
    found = problems(ONE_MODEL, "accounts:\n  main:\n    models: [Momo, Hold, Momo]\n")
    assert_problems(found, {"accounts.yaml:3:26: accounts.main.models[2]": "model 'Momo' is listed twice"})


def test_a_symbol_listed_twice_in_a_universe():
    found = problems(y("""
        universes:
          core: [SPY, TLT, SPY]
        strategies:
          Momo: {universe: core, steps: [select_all]}
    """), "accounts:\n  main:\n    models: [Momo]\n")
    assert_problems(found, {"strategies.yaml:2:20: universes.core[2]": "duplicate symbol 'SPY'"})


def test_a_broken_strategy_is_not_reported_again_as_an_unknown_model():
    found = problems(y("""
        universes: {core: [SPY]}
        strategies:
          Momo: {universe: core, steps: [select_all], colour: red}
          Hold: {universe: core, steps: [select_all]}
    """), "accounts:\n  main:\n    models: [Momo, Hold]\n")
    assert_problems(found, {"strategies.yaml:3:47: strategies.Momo.colour": "unknown key"})


def test_an_account_needs_a_model_and_a_strategy_needs_steps():
    found = problems(y("""
        universes: {core: [SPY]}
        strategies:
          Momo: {universe: core}
          Hold: {universe: core, steps: [weigh_equally]}
    """), "accounts:\n  main:\n    models: []\n  spare:\n    models: [Momo, Hold]\n")
    assert_problems(found, {
        "strategies.yaml:3:3: strategies.Momo.steps": "a strategy needs steps",
        "strategies.yaml:4:26: strategies.Hold.steps": "no selection",
        "accounts.yaml:3:5: accounts.main.models": "an account needs at least one model",
    })


# Budgets --------------------------------------------------------------------------------------

def test_budgets_over_100_percent():
    found = problems(ONE_MODEL, y("""
        accounts:
          main:
            models:
              - {name: Momo, budget: 0.7}
              - {name: Hold, budget: 0.6}
    """))
    assert_problems(found, {"accounts.yaml:3:5: accounts.main.models": "budgets add up to 130%, over 100% of the account"})


def test_budgets_at_exactly_100_percent_are_fine():
    config = load(ONE_MODEL, y("""
        accounts:
          main:
            models:
              - {name: Momo, budget: 0.7}
              - {name: Hold, budget: 0.3}
    """))
    assert len(config.accounts.accounts["main"].models) == 2


def test_a_full_budget_leaves_nothing_for_an_unbudgeted_model():
    found = problems(ONE_MODEL, y("""
        accounts:
          main:
            models:
              - {name: Momo, budget: 1.0}
              - Hold
    """))
    assert_problems(found, {"accounts.yaml:3:5: accounts.main.models": "leaving nothing for the models without one"})


@pytest.mark.parametrize("budget", ["0", "-0.2", "1.5"])
def test_a_single_budget_must_be_a_fraction_in_0_1(budget):
    found = problems(ONE_MODEL, f"accounts:\n  main:\n    models:\n      - {{name: Momo, budget: {budget}}}\n")
    assert_problems(found, {"accounts.yaml:4:22: accounts.main.models[0].budget": "a budget is a fraction of the account in (0, 1]"})


# Leverage -------------------------------------------------------------------------------------

def test_leverage_outside_0_4_in_steps_and_risk_limits():
    found = problems(
        y("""
            universes: {core: [SPY]}
            strategies:
              Momo:
                universe: core
                steps:
                  - select_all: {}
                  - scale_leverage: {gross: 4.5}
                  - limit_leverage: {gross: 0}
                  - scale_by_regime: {above: 5, below: -1}
        """),
        y("""
            accounts:
              main:
                models: [Momo]
                risk: {max_gross_leverage: 5}
                sim: {margin: 0.5}
        """),
    )
    assert_problems(found, {
        "strategies.yaml:7:26: strategies.Momo.steps[1].scale_leverage.gross": "leverage must be in (0, 4], got 4.5",
        "strategies.yaml:8:26: strategies.Momo.steps[2].limit_leverage.gross": "leverage must be in (0, 4], got 0",
        "strategies.yaml:9:27: strategies.Momo.steps[3].scale_by_regime.above": "leverage must be in [0, 4], got 5",
        "strategies.yaml:9:37: strategies.Momo.steps[3].scale_by_regime.below": "leverage must be in [0, 4], got -1",
        "accounts.yaml:4:12: accounts.main.risk.max_gross_leverage": "leverage must be in (0, 4], got 5",
        "accounts.yaml:5:11: accounts.main.sim.margin": "must be 1..4, got 0.5",
    })


def test_leverage_of_exactly_4_is_allowed():
    load(y("""
        universes: {core: [SPY]}
        strategies:
          Momo: {universe: core, steps: [select_all, {scale_leverage: {gross: 4}}]}
    """), "accounts:\n  main:\n    models: [Momo]\n    risk: {max_gross_leverage: 4}\n")


def test_fixed_weights_adding_up_to_more_than_4x_or_going_short():
    found = problems(y("""
        universes: {core: [SPY, TLT]}
        strategies:
          Fixed:
            universe: core
            steps:
              - weigh_fixed: {weights: {SPY: 3, TLT: 2}}
          Short:
            universe: core
            steps:
              - weigh_fixed: {weights: {SPY: 1, TLT: -0.5}}
    """), "accounts:\n  main:\n    models: [Fixed, Short]\n")
    assert_problems(found, {
        "strategies.yaml:6:23: strategies.Fixed.steps[0].weigh_fixed.weights": "leverage must be in (0, 4], got 5",
        "strategies.yaml:10:41: strategies.Short.steps[0].weigh_fixed.weights.TLT": "weights cannot be negative",
    })


# Symbols --------------------------------------------------------------------------------------

def test_symbols_missing_from_the_market_data_are_reported_wherever_they_are_used():
    found = problems(y("""
        benchmark: QQQ
        universes:
          core: [SPY, ZZZZ]
        strategies:
          Momo:
            universe: [AAPL, TLT]
            steps:
              - when_regime: {benchmark: VIX}
              - select_all: {}
              - fallback: {to: BND}
          Hold: {universe: core, steps: [select_all]}
    """), "accounts:\n  main:\n    models: [Momo, Hold]\n")
    assert_problems(found, {
        "strategies.yaml:1:1: benchmark": "unknown symbol 'QQQ' (not in the available market data, which holds: ",
        "strategies.yaml:3:15: universes.core[1]": "unknown symbol 'ZZZZ'",
        "strategies.yaml:6:16: strategies.Momo.universe[0]": "unknown symbol 'AAPL'",
        "strategies.yaml:8:23: strategies.Momo.steps[0].when_regime.benchmark": "unknown symbol 'VIX'",
        "strategies.yaml:10:20: strategies.Momo.steps[2].fallback.to": "unknown symbol 'BND'",
    })


def test_without_market_data_symbols_are_not_checked():
    load(y("""
        universes: {core: [AAPL, MSFT]}
        strategies:
          Momo: {universe: core, steps: [select_all]}
    """), "accounts:\n  main:\n    models: [Momo]\n", known=None)


def test_fallback_to_cash_is_not_a_symbol():
    load(y("""
        universes: {core: [SPY]}
        strategies:
          Momo: {universe: core, steps: [select_all, {fallback: {to: cash}}]}
    """), "accounts:\n  main:\n    models: [Momo]\n")


# Schedules ------------------------------------------------------------------------------------

def test_impossible_schedules():
    found = problems(y("""
        universes: {core: [SPY]}
        strategies:
          Monthly:
            universe: core
            rebalance: {every: monthly, day: 19}
            steps: [select_all]
          Weekly:
            universe: core
            rebalance: {every: weekly, day: 0, after_open_minutes: 390}
            steps: [select_all]
          Quarterly:
            universe: core
            rebalance: {every: quarterly, day: 61, after_open_minutes: -5}
            steps: [select_all]
    """), "accounts:\n  main:\n    models: [Monthly, Weekly, Quarterly]\n")
    assert_problems(found, {
        "strategies.yaml:5:33: strategies.Monthly.rebalance.day": "a monthly schedule's day must be 1..18",
        "strategies.yaml:9:32: strategies.Weekly.rebalance.day": "a weekly schedule's day must be 1..3",
        "strategies.yaml:9:40: strategies.Weekly.rebalance.after_open_minutes": "must be 0..389",
        "strategies.yaml:13:35: strategies.Quarterly.rebalance.day": "a quarterly schedule's day must be 1..60",
        "strategies.yaml:13:44: strategies.Quarterly.rebalance.after_open_minutes": "must be 0..389",
    })


def test_the_latest_possible_schedules_are_allowed():
    load(y("""
        universes: {core: [SPY]}
        strategies:
          Monthly:
            universe: core
            rebalance: {every: monthly, day: 18, after_open_minutes: 389}
            steps: [select_all]
          Daily:
            universe: core
            rebalance: {every: daily, day: 1, after_open_minutes: 0}
            steps: [select_all]
    """), "accounts:\n  main:\n    models: [Monthly, Daily]\n")


# Accounts -------------------------------------------------------------------------------------

def test_account_settings_out_of_range():
    found = problems(STRATEGIES, y("""
        accounts:
          main:
            models: [Momo]
            mode: live
            starting_cash: 0
            base_url: paper-api.alpaca.markets
            sim: {commission_bps: -1, borrow_rate: 2}
            risk: {max_weight: 0, max_orders_per_day: 0, cooldown_minutes: -1}
        health: {port: 70000}
    """))
    assert_problems(found, {
        "accounts.yaml:4:5: accounts.main.mode": "the simulated broker has no live mode",
        "accounts.yaml:5:5: accounts.main.starting_cash": "must be positive, got 0",
        "accounts.yaml:6:5: accounts.main.base_url": "must be an http:// or https:// URL",
        "accounts.yaml:7:11: accounts.main.sim.commission_bps": "must be 0..1000 basis points, got -1",
        "accounts.yaml:7:31: accounts.main.sim.borrow_rate": "must be an annual fraction 0..1, got 2",
        "accounts.yaml:8:12: accounts.main.risk.max_weight": "must be in (0, 4], got 0",
        "accounts.yaml:8:27: accounts.main.risk.max_orders_per_day": "must be at least 1, got 0",
        "accounts.yaml:8:50: accounts.main.risk.cooldown_minutes": "cannot be negative, got -1",
        "accounts.yaml:9:10: health.port": "must be 0..65535",
    })


# Secrets --------------------------------------------------------------------------------------

API_KEY = "PKTESTSECRET1234567890"
SECRET = "sEcReTvAlUe0123456789sEcReTvAlUe0123456789"


def test_plaintext_keys_are_refused_with_a_fix_and_never_echoed():
    accounts = y(f"""
        accounts:
          live:
            broker: alpaca
            api_key: {API_KEY}
            secret_key: {SECRET}
            models: [Momo]
    """)
    assert_problems(problems(STRATEGIES, accounts), {
        "accounts.yaml:4:5: accounts.live.api_key": "export the key as an environment variable and write `api_key_env: ALPACA_API_KEY`",
        "accounts.yaml:5:5: accounts.live.secret_key": "write `secret_key_env: ALPACA_SECRET_KEY` instead",
    })
    with pytest.raises(ConfigError) as info:
        load(STRATEGIES, accounts)
    everything = (str(info.value) + repr(info.value) + repr(info.value.problems)).lower()
    assert API_KEY.lower() not in everything and SECRET.lower() not in everything


@pytest.mark.parametrize("key", ["password", "token", "secret", "key", "api_secret", "key_id"])
def test_every_credential_key_name_is_refused(key):
    found = problems(STRATEGIES, f"accounts:\n  live:\n    models: [Momo]\n    {key}: {SECRET}\n")
    assert_problems(found, {f"accounts.yaml:4:5: accounts.live.{key}": "plaintext keys are not allowed"})
    assert SECRET not in "".join(found.values())


@pytest.mark.parametrize("value", [API_KEY, SECRET, "not a name"])
def test_an_env_field_holding_a_key_instead_of_a_variable_name(value):
    found = problems(STRATEGIES, f"accounts:\n  live:\n    broker: alpaca\n    models: [Momo]\n    secret_key_env: '{value}'\n")
    assert_problems(found, {"accounts.yaml:5:5: accounts.live.secret_key_env": "must name an environment variable (like ALPACA_SECRET_KEY)"})
    assert value not in "".join(found.values())


def test_env_variable_names_are_accepted():
    config = load(STRATEGIES, y("""
        accounts:
          live:
            broker: alpaca
            api_key_env: MY_PAPER_KEY
            secret_key_env: MY_PAPER_SECRET
            models: [Momo]
    """))
    assert config.accounts.accounts["live"].api_key_env == "MY_PAPER_KEY"


# All at once ----------------------------------------------------------------------------------

def test_problems_from_decoding_and_every_rule_in_both_files_come_together():
    found = problems(y("""
        universes: {core: [SPY, NOPE]}
        strategies:
          Momo:
            universe: core
            rebalance: {every: weekly, day: 9}
            steps: [select_all, {scale_leverage: {gross: 9}}]
          Other: {universe: elsewhere, steps: [select_all], extra: 1}
    """), y(f"""
        accounts:
          main:
            api_key: {API_KEY}
            models:
              - {{name: Momo, budget: 0.9}}
              - {{name: Ghost, budget: 0.9}}
    """))
    assert sorted(found) == [
        "accounts.yaml:3:5: accounts.main.api_key",
        "accounts.yaml:4:5: accounts.main.models",
        "accounts.yaml:6:9: accounts.main.models[1]",
        "strategies.yaml:1:25: universes.core[1]",
        "strategies.yaml:5:32: strategies.Momo.rebalance.day",
        "strategies.yaml:6:43: strategies.Momo.steps[1].scale_leverage.gross",
        # Other's unknown key does not hide the problem in the rest of it.
        "strategies.yaml:7:11: strategies.Other.universe",
        "strategies.yaml:7:53: strategies.Other.extra",
    ]


# Regressions ---------------------------------------------------------------------------------

def test_a_broken_only_account_does_not_also_report_no_accounts_defined():
    found = problems(STRATEGIES, "accounts:\n  main:\n    models: [Momo]\n    levrage: 2\n")
    assert_problems(found, {"accounts.yaml:4:5: accounts.main.levrage": "unknown key"})


def test_a_syntax_error_is_not_followed_by_a_cascade_of_false_problems():
    found = problems("universes: {core: [SPY]\nstrategies: {}\n", "accounts:\n  main:\n    models: [Momo]\n")
    assert [k for k in found if not found[k].startswith("invalid YAML")] == []


def test_non_finite_numbers_are_refused():
    found = problems(y("""
        universes: {core: [SPY]}
        strategies:
          Momo:
            universe: core
            steps: [{select_momentum: {min_return: .nan}}]
    """), "accounts:\n  main:\n    models: [Momo]\n    starting_cash: .inf\n    min_trade_value: .nan\n"
          "    risk: {max_order_notional: .nan}\n")
    assert sorted(found) == [
        "accounts.yaml:4:5: accounts.main.starting_cash",
        "accounts.yaml:5:5: accounts.main.min_trade_value",
        "accounts.yaml:6:12: accounts.main.risk.max_order_notional",
        "strategies.yaml:5:32: strategies.Momo.steps[0].select_momentum.min_return",
    ]


def test_an_unknown_symbol_in_a_step_points_at_the_field_that_names_it():
    found = problems(y("""
        universes: {core: [SPY]}
        strategies:
          Momo:
            universe: core
            steps:
              - when_regime: {benchmark: VIX}
              - select_all: {}
              - fallback: {to: BND}
    """), "accounts:\n  main:\n    models: [Momo]\n")
    assert sorted(found) == [
        "strategies.yaml:6:23: strategies.Momo.steps[0].when_regime.benchmark",
        "strategies.yaml:8:20: strategies.Momo.steps[2].fallback.to",
    ]
