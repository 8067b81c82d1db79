"""Names that are printed and matched (accounts, strategies, universes) are plain text, and
numbers written as 1e9 are numbers."""

from __future__ import annotations

import pytest
from spec_support import ACCOUNTS, STRATEGIES, load, problems, y

from botctl.errors import ConfigError


@pytest.mark.parametrize("name", ['"*"', '"two words"', '"evil\\e[2J\\nline"', "x" * 65, '""', '"naïve"', '"a/b"'],
                         ids=["star", "space", "escape", "65-chars", "empty", "non-ascii", "slash"])
def test_an_account_name_outside_the_allowed_characters_is_a_problem_at_its_line(name):
    accounts = y(f"""
        accounts:
          main:
            models: [Momo]
          {name}:
            models: [Hold]
    """)
    with pytest.raises(ConfigError) as caught:
        load(accounts=accounts)
    (problem,) = caught.value.problems
    text = str(problem)  # what validate prints
    assert text.startswith("accounts.yaml:4:3: accounts.")
    assert ": account names are 1-64 characters from A-Z a-z 0-9 . _ -, got " in text
    assert text.isprintable()  # the escape and the newline are shown escaped


def test_strategy_and_universe_names_are_restricted_too_and_good_names_pass():
    strategies = STRATEGIES.replace("core:", "'my core':").replace("universe: core", "universe: 'my core'")
    strategies = strategies.replace("Momo:", "'Momo v2!':")
    accounts = ACCOUNTS.replace("[Momo, Hold]", "['Momo v2!', Hold]")
    found = problems(strategies, accounts)
    assert found == {
        "strategies.yaml:2:3: universes.my core": "universe names are 1-64 characters from A-Z a-z 0-9 . _ -, got 'my core'",
        "strategies.yaml:4:3: strategies.Momo v2!": "strategy names are 1-64 characters from A-Z a-z 0-9 . _ -, got 'Momo v2!'",
    }
    fine = STRATEGIES.replace("Momo:", "Momo-2.v_3:")
    assert problems(fine, ACCOUNTS.replace("[Momo, Hold]", "[Momo-2.v_3, Hold]")) == {}
    assert problems(accounts=ACCOUNTS.replace("main:", "A" * 64 + ":")) == {}


@pytest.mark.parametrize("written, value", [("1e6", 1e6), ("1.0e6", 1e6), ("2.5E5", 2.5e5), ("1.0e+6", 1e6), ("5e-1", 0.5)])
def test_exponent_numbers_read_as_numbers(written, value):
    config = load(accounts=ACCOUNTS + f"    starting_cash: {written}\n    risk: {{max_weight: 5e-1}}\n")
    account = config.accounts.accounts["main"]
    assert account.starting_cash == value and account.risk.max_weight == 0.5


def test_text_that_only_looks_like_an_exponent_stays_text_and_a_count_says_what_to_write():
    assert problems(accounts=ACCOUNTS + "    starting_cash: 1e\n") == {
        "accounts.yaml:4:5: accounts.main.starting_cash": "expected a number, got '1e'"}
    assert problems(accounts=ACCOUNTS + "    risk: {max_orders_per_day: 1e3}\n") == {
        "accounts.yaml:4:12: accounts.main.risk.max_orders_per_day":
            "expected a whole number, got 1000.0 (write it as 1000)"}
