"""Parsing and decoding: every structural problem is reported at once, each at its FILE:LINE:COL
and key path, and hostile input (huge, non-UTF-8, alias bombs, deep nesting) is refused cleanly."""

from __future__ import annotations

import pytest
from spec_support import ACCOUNTS, STRATEGIES, assert_problems, load, problems, y

from botctl.adapters.file_data import available_symbols
from botctl.errors import ConfigError, ConfigProblem
from botctl.spec import steps as st
from botctl.spec.model import ModelRef, ScheduleSpec
from botctl.spec.yamlsource import MAX_BYTES, YamlSource


def test_the_shipped_configs_are_valid_against_the_bundled_data(repo_root):
    config = load((repo_root / "strategies.yaml").read_bytes(), (repo_root / "accounts.yaml").read_bytes(),
                  known=available_symbols())
    assert set(config.strategies.strategies) == {
        "SectorRotationModel_v1", "SectorRotationBull_v1", "SectorRotationBear_v1", "SectorRotationAdaptive_v3",
        "SectorBreakoutBook_v1"}
    assert set(config.accounts.accounts) == {"rotation-sim", "adaptive-sim", "signals-sim"}


def test_a_valid_config_decodes_into_typed_specs_and_steps():
    config = load()
    momo = config.strategies.strategies["Momo"]
    assert momo.universe == "core"
    assert momo.rebalance == "monthly"  # the default
    assert config.strategies.universes["core"] == ["SPY", "TLT", "XLK"]
    assert config.steps["Momo"] == (st.SelectMomentum(lookback_days=126, top=2), st.WeighEqually())
    # A bare step name is shorthand for the step with its defaults.
    assert config.steps["Hold"] == (st.SelectAll(), st.WeighEqually())
    assert config.accounts.accounts["main"].models == ["Momo", "Hold"]
    assert config.accounts.accounts["main"].broker == "sim"


def test_schedules_and_budgets_decode_in_both_forms():
    config = load(
        y("""
            universes: {core: [SPY]}
            strategies:
              A:
                universe: core
                rebalance: {every: weekly, day: 2, after_open_minutes: 60}
                steps: [select_all]
        """),
        y("""
            accounts:
              main:
                models:
                  - {name: A, budget: 0.5}
        """),
    )
    assert config.strategies.strategies["A"].rebalance == ScheduleSpec(every="weekly", day=2, after_open_minutes=60)
    assert config.accounts.accounts["main"].models == [ModelRef(name="A", budget=0.5)]


def test_problem_prints_as_file_line_col_keypath_message():
    assert str(ConfigProblem("accounts.yaml", 3, 5, "accounts.main.models", "boom")) == \
        "accounts.yaml:3:5: accounts.main.models: boom"
    assert str(ConfigProblem("strategies.yaml", 1, 1, "", "invalid YAML: x")) == "strategies.yaml:1:1: invalid YAML: x"


# Unknown keys ---------------------------------------------------------------------------------

def test_unknown_keys_are_reported_at_every_level_at_once():
    found = problems(
        y("""
            universes:
              core: [SPY, TLT]
            colour: blue
            strategies:
              Momo:
                universe: core
                frequency: monthly
                steps:
                  - select_momentum: {top: 2, lookbak_days: 90}
        """),
        y("""
            accounts:
              main:
                models: [Momo]
                sim: {fill: open, slipage_bps: 3}
              spare:
                models: [Momo]
            helth: {port: 1}
        """),
    )
    assert_problems(found, {
        "strategies.yaml:3:1: colour": "unknown key (expected one of: benchmark, strategies, universes)",
        "strategies.yaml:7:5: strategies.Momo.frequency": "unknown key",
        "strategies.yaml:9:35: strategies.Momo.steps[0].select_momentum.lookbak_days": "unknown key",
        "accounts.yaml:4:23: accounts.main.sim.slipage_bps": "unknown key",
        "accounts.yaml:7:1: helth": "unknown key (expected one of: accounts, health)",
    })


def test_an_unknown_step_name_lists_the_vocabulary():
    found = problems(y("""
        universes: {core: [SPY]}
        strategies:
          Momo:
            universe: core
            steps:
              - select_all: {}
              - weigh_by_vibes: {strength: 11}
    """), y("""
        accounts:
          main:
            models: [Momo]
    """))
    assert_problems(found, {"strategies.yaml:7:9: strategies.Momo.steps[1].weigh_by_vibes": "unknown step"})
    assert "select_momentum" in found["strategies.yaml:7:9: strategies.Momo.steps[1].weigh_by_vibes"]


def test_a_step_must_be_a_one_key_mapping():
    found = problems(y("""
        universes: {core: [SPY]}
        strategies:
          Momo:
            universe: core
            steps:
              - {select_all: {}, weigh_equally: {}}
              - 42
    """), "accounts:\n  main:\n    models: [Momo]\n")
    assert_problems(found, {
        "strategies.yaml:6:9: strategies.Momo.steps[0]": "one-key mapping",
        "strategies.yaml:7:9: strategies.Momo.steps[1]": "one-key mapping",
    })


# Wrong types and missing keys -----------------------------------------------------------------

def test_wrong_types_are_reported_for_every_bad_value():
    found = problems(
        y("""
            universes:
              core: [SPY, 3]
            strategies:
              Momo:
                universe: core
                rebalance: hourly
                steps:
                  - select_momentum: {top: three, lookback_days: 1.5}
        """),
        y("""
            accounts:
              main:
                models: [Momo]
                starting_cash: lots
                sim: {fill: mid, fractional: "yes"}
              other:
                models: Momo
              spare:
                models: [Momo]
        """),
    )
    assert_problems(found, {
        "strategies.yaml:2:15: universes.core[1]": "expected text, got a number",
        "strategies.yaml:6:5: strategies.Momo.rebalance": "expected one of 'daily', 'weekly', 'monthly', 'quarterly'",
        "strategies.yaml:8:27: strategies.Momo.steps[0].select_momentum.top": "expected a whole number, got 'three'",
        "strategies.yaml:8:39: strategies.Momo.steps[0].select_momentum.lookback_days": "expected a whole number",
        "accounts.yaml:4:5: accounts.main.starting_cash": "expected a number, got 'lots'",
        "accounts.yaml:5:11: accounts.main.sim.fill": "expected one of 'open', 'close', got 'mid'",
        "accounts.yaml:5:22: accounts.main.sim.fractional": "expected true or false, got 'yes'",
        "accounts.yaml:7:5: accounts.other.models": "expected a list, got text",
    })


def test_booleans_are_not_numbers_and_numbers_are_not_text():
    found = problems(
        STRATEGIES,
        y("""
            accounts:
              main:
                models: [Momo, 7]
                starting_cash: true
              spare:
                models: [Hold]
        """),
    )
    assert_problems(found, {
        "accounts.yaml:3:20: accounts.main.models[1]": "expected text or a mapping, got a number",
        "accounts.yaml:4:5: accounts.main.starting_cash": "expected a number, got a boolean",
    })


def test_missing_required_keys_name_the_key_at_the_parent():
    found = problems(
        y("""
            universes: {core: [SPY]}
            strategies:
              Momo:
                steps: [select_all]
              Hold:
                universe: core
                steps: [select_all]
        """),
        y("""
            accounts:
              main:
                broker: sim
              spare:
                models: [Hold]
        """),
    )
    assert_problems(found, {
        "strategies.yaml:3:3: strategies.Momo": "missing required key 'universe'",
        "accounts.yaml:2:3: accounts.main": "missing required key 'models'",
    })


def test_an_entry_that_is_not_a_mapping_is_reported_and_the_others_still_checked():
    found = problems(
        y("""
            universes: {core: [SPY]}
            strategies:
              Momo: just text
              Hold:
                universe: nowhere
                steps: [select_all]
        """),
        "accounts:\n  main:\n    models: [Momo, Hold]\n",
    )
    assert_problems(found, {
        "strategies.yaml:3:3: strategies.Momo": "expected a mapping, got text",
        "strategies.yaml:5:5: strategies.Hold.universe": "unknown universe 'nowhere'",
    })


def test_a_file_whose_top_is_not_a_mapping():
    found = problems(STRATEGIES, "- main\n- other\n")
    assert found["accounts.yaml:1:1: "] == "expected a mapping at the top of the file, got a list"


# Duplicate names ------------------------------------------------------------------------------

def test_duplicate_names_are_reported_where_the_second_one_is_written():
    found = problems(
        y("""
            universes:
              core: [SPY]
              core: [TLT]
            strategies:
              Momo:
                universe: core
                steps:
                  - select_momentum: {top: 1, top: 2}
              Momo:
                universe: core
                steps: [select_all]
        """),
        y("""
            accounts:
              main:
                models: [Momo]
              main:
                models: [Momo]
        """),
    )
    assert_problems(found, {
        "strategies.yaml:3:3: universes.core": "duplicate key (first defined on line 2)",
        "strategies.yaml:8:35: strategies.Momo.steps[0].select_momentum.top": "duplicate key (first defined on line 8)",
        "strategies.yaml:9:3: strategies.Momo": "duplicate key (first defined on line 5)",
        "accounts.yaml:4:3: accounts.main": "duplicate key (first defined on line 2)",
    })


# Broken YAML and hostile input ----------------------------------------------------------------

def test_a_yaml_syntax_error_names_where_the_parser_stopped():
    found = problems(STRATEGIES, "accounts:\n  main:\n    models: [Momo, Hold\n")
    assert any(k.startswith("accounts.yaml:4:1: ") and v.startswith("invalid YAML:") for k, v in found.items()), found


def test_a_tab_indent_is_a_syntax_error_with_its_position():
    found = problems(STRATEGIES, "accounts:\n  main:\n\tmodels: [Momo]\n")
    assert any(k.startswith("accounts.yaml:3:1: ") and "invalid YAML" in v for k, v in found.items()), found


def test_bytes_that_are_not_utf8_are_a_config_error():
    found = problems(STRATEGIES, b"accounts:\n  main:\n    models: [Momo]\n    mode: \x80\x81\xfe\n")
    assert any(k.startswith("accounts.yaml:4:") and "invalid YAML" in v for k, v in found.items()), found


def test_utf16_with_a_bom_is_read():
    config = load(STRATEGIES, ACCOUNTS.encode("utf-16"))
    assert config.accounts.accounts["main"].models == ["Momo", "Hold"]


def test_a_file_over_one_mebibyte_is_refused_without_parsing():
    huge = ACCOUNTS + "#" + "x" * MAX_BYTES + "\n"
    found = problems(STRATEGIES, huge)
    assert any(k == "accounts.yaml:1:1: " and "too large" in v for k, v in found.items()), found


def test_an_alias_bomb_is_refused():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for name, prev in zip("bcdefgh", "abcdefg"):
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    source = YamlSource("strategies.yaml", bomb)
    assert source.value is None
    assert [str(p) for p in source.problems] == ["strategies.yaml:1:1: document expands to more than 100000 values"]


@pytest.mark.parametrize("depth", [2_000, 50_000])
def test_deeply_nested_lists_are_refused(depth):
    source = YamlSource("strategies.yaml", "universes:\n  core: " + "[" * depth + "]" * depth + "\n")
    assert [str(p) for p in source.problems] == ["strategies.yaml:1:1: invalid YAML: nested too deeply"]


def test_moderately_nested_values_are_just_the_wrong_type():
    found = problems(y("""
        universes:
          core: [[[[[[SPY]]]]]]
        strategies:
          Momo: {universe: core, steps: [select_all]}
    """), "accounts:\n  main:\n    models: [Momo]\n")
    assert found == {"strategies.yaml:2:10: universes.core[0]": "expected text, got a list"}


def test_python_tags_are_never_constructed():
    found = problems(STRATEGIES, ACCOUNTS + "health: {host: !!python/object/apply:os.system [echo pwned]}\n")
    assert_problems(found, {"accounts.yaml:4:10: health.host": "expected text, got a list"})


def test_an_empty_pair_of_files_says_what_is_missing():
    found = problems("", "")
    assert_problems(found, {
        "strategies.yaml:1:1: strategies": "no strategies defined",
        "accounts.yaml:1:1: accounts": "no accounts defined",
    })


def test_config_error_carries_every_problem_sorted_by_file_and_position():
    with pytest.raises(ConfigError) as info:
        load(
            "universes: {core: [SPY]}\nstrategies:\n  Momo: {universe: core, steps: [select_all], x: 1, y: 2}\n",
            "accounts:\n  main: {models: [Momo], z: 3}\n  spare: {models: [Momo]}\n",
        )
    assert [(p.file, p.line, p.col, p.path) for p in info.value.problems] == [
        ("accounts.yaml", 2, 26, "accounts.main.z"),
        ("strategies.yaml", 3, 47, "strategies.Momo.x"),
        ("strategies.yaml", 3, 53, "strategies.Momo.y"),
    ]
    assert info.value.exit_code == 4


# Bugs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["!!bool", "!!timestamp"])
def test_an_explicit_tag_that_does_not_fit_the_text_is_an_invalid_value(tag):
    found = problems(STRATEGIES, ACCOUNTS + f"health: {{host: {tag} not-a-{tag[2:]}}}\n")
    assert_problems(found, {"accounts.yaml:4:10: health.host": "invalid value"})


def test_text_with_an_unpaired_surrogate_escape_is_an_invalid_value():
    found = problems(STRATEGIES, ACCOUNTS + '    mode: "\\ud800"\n')
    assert list(found) == ["accounts.yaml:4:5: accounts.main.mode"]
