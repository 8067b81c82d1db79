"""The engine: (plan, portfolio state, closed bars) -> commands. Pure.

Backtest, replay, paper and live all call `decide_cycle`; only where the state comes from and
where the commands go differ. Models that are not due this cycle keep their last decision, so
an account's target is always the budget-weighted sum of every model's latest targets.
"""

from __future__ import annotations

import msgspec

from botctl.engine.rebalance import diff_orders
from botctl.records import SubmitOrder
from botctl.spec.plan import AccountPlan
from botctl.strategy.evaluate import Decision, account_targets, decide
from botctl.strategy.bars import Bars
from botctl.strategy.signals import Signals


class CycleResult(msgspec.Struct, frozen=True):
    decisions: dict[str, Decision]
    targets: dict[str, float]
    orders: list[SubmitOrder]


def account_signals(account: AccountPlan, bars: Bars) -> Signals:
    return Signals(bars, tuple(step for model in account.models for step in model.steps))


def decide_cycle(
    account: AccountPlan,
    signals: Signals,
    row: int,
    due: list[str],
    previous: dict[str, Decision],
    qty: dict[str, float],
    cash: float,
    prices: dict[str, float],
    *,
    fractional: bool = True,
) -> CycleResult:
    """Re-decide the `due` models at bar `row` (the last closed bar) and diff the account."""
    decisions = dict(previous)
    for model in account.models:
        if model.name in due:
            decisions[model.name] = decide(model.steps, model.universe, signals, row)
    budgets = {m.name: m.budget for m in account.models}
    targets = account_targets(decisions, budgets)
    orders = diff_orders(account.id, targets, qty, cash, prices,
                         min_trade_value=account.min_trade_value, fractional=fractional)
    return CycleResult(decisions, targets, orders)
