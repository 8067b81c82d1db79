"""The engine: (plan, portfolio state, closed bars) -> commands. Pure.

Backtest, replay, paper and live all call `decide_cycle`; only where the state comes from and
where the commands go differ. Models that are not due this cycle keep their last decision, so
an account's target is always the budget-weighted sum of every model's latest targets.

Signal books (models with score_* steps, engine.positions) are decided here too: their
per-position state comes in as `book_state` and goes out in `CycleResult.book_state`. They own
the shares their positions hold; rebalancers' targets are diffed against the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import numpy as np

from botctl.engine.positions import BookNote, BookState, decide_book
from botctl.engine.rebalance import diff_orders
from botctl.records import SubmitOrder
from botctl.spec.plan import AccountPlan, ModelPlan
from botctl.spec.steps import is_signal_book
from botctl.strategy.identity import IdentityCache
from botctl.strategy.evaluate import Decision, account_targets, decide
from botctl.strategy.bars import Bars
from botctl.strategy.signals import Signals


class CycleResult(msgspec.Struct, frozen=True):
    decisions: dict[str, Decision]
    targets: dict[str, float]
    orders: list[SubmitOrder]
    # The signal books' state after this cycle (None when the account has none) and what they
    # did or could not do, for the runtime to journal as events.
    book_state: BookState | None = None
    book_notes: list[BookNote] = []


def account_signals(account: AccountPlan, bars: Bars,
                    external_scores: Mapping[str, np.ndarray] | None = None) -> Signals:
    return Signals(bars, tuple(step for model in account.models for step in model.steps), external_scores)


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
    book_state: BookState | None = None,
) -> CycleResult:
    """Re-decide the `due` models at bar `row` (the last closed bar) and diff the account."""
    books, rotation = _kinds(account.models)
    decisions = dict(previous)
    for model in rotation:
        if model.name in due:
            decisions[model.name] = decide(model.steps, model.universe, signals, row)
    budgets = {m.name: m.budget for m in rotation}
    targets = account_targets({n: d for n, d in decisions.items() if n in budgets}, budgets)
    state = book_state or BookState()
    # Shares the signal books hold are theirs: rebalancers trade only the rest of each symbol.
    book_held = state.held()
    orders: list[SubmitOrder] = []
    if not books:
        orders = diff_orders(account.id, targets, qty, cash, prices,
                             min_trade_value=account.min_trade_value, fractional=fractional)
        return CycleResult(decisions, targets, orders)
    if rotation and (not due or any(m.name in due for m in rotation)):
        # never below zero: a book counting shares the account does not hold must not make a buy
        rest = {s: max(0.0, q - book_held.get(s, 0.0)) for s, q in qty.items()}
        orders = diff_orders(account.id, targets, rest, cash, prices, min_trade_value=account.min_trade_value,
                             fractional=fractional, nav=nav_of_usable(cash, qty, prices))
    nav = nav_of_usable(cash, qty, prices)
    models = dict(state.models)
    notes: list[BookNote] = []
    for model in books:
        if model.name not in due:
            continue
        outcome = decide_book(model, signals, row, models.get(model.name), qty, prices, nav, account=account.id,
                              fractional=fractional, min_trade_value=account.min_trade_value)
        models[model.name] = outcome.book
        orders.extend(outcome.orders)
        notes.extend(outcome.notes)
        values = {s: p.qty * prices[s] for s, p in outcome.book.positions.items() if s in prices}
        budget = model.budget * nav
        decisions[model.name] = Decision({s: v / budget for s, v in sorted(values.items())} if budget > 0 else {},
                                         "active" if values else "empty",
                                         f"{len(outcome.book.positions)} open position(s)")
    return CycleResult(decisions, targets, net_orders(orders), BookState(models=models), notes)


_KINDS: IdentityCache[tuple[list[ModelPlan], list[ModelPlan]]] = IdentityCache()


def _kinds(models: tuple[ModelPlan, ...]) -> tuple[list[ModelPlan], list[ModelPlan]]:
    """(signal books, rebalancers) of an account's models, worked out once per plan: a signal
    book's account decides every session."""
    return _KINDS.get(lambda: ([m for m in models if is_signal_book(m.steps)],
                               [m for m in models if not is_signal_book(m.steps)]), models)


def nav_of_usable(cash: float, qty: Mapping[str, float], prices: Mapping[str, float]) -> float:
    """NAV at `prices`, a holding without a price counting as nothing (what diff_orders does)."""
    return cash + sum(q * prices[s] for s, q in qty.items() if q and s in prices)


def net_orders(orders: list[SubmitOrder]) -> list[SubmitOrder]:
    """One order per symbol (an order id names symbol and side once per cycle): the models'
    buys and sells of a symbol are netted, reasons joined; sells first, then buys."""
    by_symbol: dict[str, list[SubmitOrder]] = {}
    for order in orders:
        by_symbol.setdefault(order.symbol, []).append(order)
    sells: list[SubmitOrder] = []
    buys: list[SubmitOrder] = []
    for symbol, group in by_symbol.items():
        if len(group) == 1:
            (sells if group[0].side == "sell" else buys).append(group[0])
            continue
        signed = sum(o.qty if o.side == "buy" else -o.qty for o in group)
        if abs(signed) < 1e-9:
            continue
        reasons = "+".join(dict.fromkeys(o.reason for o in group))
        merged = msgspec.structs.replace(group[0], side="buy" if signed > 0 else "sell", qty=abs(signed), reason=reasons)
        (buys if signed > 0 else sells).append(merged)
    return sells + buys
