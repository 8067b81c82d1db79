"""Defaults must not contradict each other: every strategy the docs show (and every shipped
one), run with the default risk settings, has none of its orders blocked by the guard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from botctl.adapters.file_data import available_symbols, load_bars
from botctl.runtime.backtest import run_backtest
from botctl.spec.load import load_config
from botctl.spec.plan import compile_plan
from botctl.strategy.bars import bars_from_frame

ROOT = Path(__file__).resolve().parents[2]


def documented_strategies() -> dict:
    """Every strategy in a yaml block of docs/strategies.md, and those of strategies.yaml."""
    text = (ROOT / "docs" / "strategies.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    full = yaml.safe_load(blocks[0])
    strategies = dict(full["strategies"])
    for block in blocks[1:]:  # fragments of the `strategies:` mapping, indented under it
        strategies.update(yaml.safe_load("strategies:\n" + block)["strategies"])
    shipped = yaml.safe_load((ROOT / "strategies.yaml").read_text())
    strategies.update(shipped["strategies"])
    return {"benchmark": "SPY", "universes": {**full["universes"], **shipped["universes"]}, "strategies": strategies}


@pytest.fixture(scope="module")
def default_risk_backtest():
    strategies = documented_strategies()
    # One account per strategy, nothing but the required keys: every risk and sim setting default.
    accounts = {"accounts": {f"acct-{name}": {"broker": "sim", "mode": "paper", "starting_cash": 100_000,
                                              "models": [name]}
                             for name in strategies["strategies"]}}
    config = load_config(json.dumps(strategies), json.dumps(accounts), known_symbols=available_symbols(None))
    plan = compile_plan(config)
    bars = bars_from_frame(load_bars(), plan.symbols)
    return strategies, run_backtest(plan, bars, breakers="off")


def test_the_docs_show_a_fallback_to_a_symbol_at_full_weight():
    steps = [step for s in documented_strategies()["strategies"].values() for step in s["steps"]]
    assert {"fallback": {"to": "TLT"}} in steps  # the case the default max_order_pct_nav blocked


def test_no_documented_strategy_has_an_order_blocked_under_the_default_limits(default_risk_backtest):
    strategies, result = default_risk_backtest
    assert set(result.accounts) == {f"acct-{name}" for name in strategies["strategies"]}
    for name, curve in result.accounts.items():
        orders = {rule: n for rule, n in curve.blocked.items() if rule != "suspect_data"}  # data, not orders
        assert orders == {}, f"{name}: {orders}"
        assert curve.trades > 0, f"{name} never traded"
