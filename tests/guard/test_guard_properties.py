"""Hypothesis properties of the risk guard over random portfolios, limits and order lists.

The portfolios are long-only and every sell is covered by the position (the engine and the
SimBroker never short). Reference prices equal the marks, as they do in the runtime, so each
order's notional and the position's value are measured at the same price; the collar is
exercised by moving the last close instead.
"""

from __future__ import annotations

import math
from datetime import timedelta

import msgspec
from guard_support import ACCOUNT, NOW, SELL_RULES, TODAY, apply, gross
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botctl.engine import guard
from botctl.records import SubmitOrder
from botctl.spec.model import RiskSpec

SYMBOLS = ("A", "B", "C", "D", "E")  # E is held but outside the universe
UNIVERSE = frozenset("ABCD")
TOL = 1e-7

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw):
    prices = {s: draw(st.floats(1.0, 1_000.0)) for s in SYMBOLS}
    moves = {s: draw(st.one_of(st.just(0.0), st.floats(-0.2, 0.2))) for s in SYMBOLS}
    last_close = {s: prices[s] / (1 + moves[s]) for s in SYMBOLS}
    held = {s: draw(st.one_of(st.just(0.0), st.floats(0.0, 2_000.0))) for s in SYMBOLS}
    holdings = sum(q * prices[s] for s, q in held.items())
    # Cash from heavily borrowed to all cash; NAV is kept positive (an account without equity
    # cannot buy at all, which test_guard_rules covers).
    cash = draw(st.floats(-0.8, 2.0)) * max(holdings, 1.0) + draw(st.floats(1.0, 200_000.0))
    nav = cash + holdings
    if nav <= 0:
        nav = draw(st.floats(1.0, 10_000.0))
    # Each limit is sometimes loose and sometimes tight, so that every rule gets its turn and
    # most examples still accept some orders.
    spec = RiskSpec(
        max_weight=draw(st.floats(0.05, 1.5)),
        max_gross_leverage=draw(st.floats(0.2, 3.0)),
        max_order_notional=draw(st.one_of(st.just(1e9), st.floats(100.0, 1_000_000.0))),
        max_order_pct_nav=draw(st.one_of(st.just(10.0), st.floats(0.01, 1.5))),
        price_collar_pct=draw(st.one_of(st.just(0.5), st.floats(0.01, 0.25))),
        max_orders_per_cycle=draw(st.one_of(st.just(100), st.integers(0, 12))),
        max_orders_per_day=draw(st.one_of(st.just(100), st.integers(0, 20))),
        cooldown_minutes=draw(st.sampled_from([0, 0, 15, 60])),
        max_data_age_days=draw(st.integers(0, 6)),
    )
    data_age = draw(st.one_of(st.integers(0, spec.max_data_age_days), st.integers(0, 7)))
    state = guard.GuardState(
        account=ACCOUNT,
        day=draw(st.sampled_from([None, TODAY, TODAY - timedelta(days=1)])),
        orders_today=draw(st.one_of(st.integers(0, 3), st.integers(0, 20))),
        last_fill_at={s: NOW - timedelta(minutes=draw(st.integers(0, 90)))
                      for s in draw(st.sets(st.sampled_from(SYMBOLS), max_size=3))},
    )
    book = guard.Portfolio(nav=nav, qty={s: q for s, q in held.items() if q}, prices=prices, last_close=last_close,
                           universe=UNIVERSE, data_as_of=TODAY - timedelta(days=data_age), today=TODAY)
    orders = []
    remaining = dict(held)
    for _ in range(draw(st.integers(0, 10))):
        symbol = draw(st.sampled_from(SYMBOLS))
        if remaining[symbol] > 0 and draw(st.booleans()):
            qty = remaining[symbol] * draw(st.floats(0.01, 1.0))
            remaining[symbol] -= qty
            side = "sell"
        else:
            qty = draw(st.floats(0.01, 3.0)) * nav / prices[symbol] * draw(st.sampled_from([0.01, 0.1, 1.0]))
            side = "buy"
        orders.append(SubmitOrder(account=ACCOUNT, symbol=symbol, side=side, qty=qty, ref_price=prices[symbol]))
    return spec, book, state, orders


def weight(qty, prices, symbol, nav):
    return abs(qty.get(symbol, 0.0) * prices[symbol]) / nav


@SETTINGS
@given(scenarios())
def test_no_accepted_order_set_breaks_a_limit(scenario):
    spec, book, state, orders = scenario
    accepted, blocked = guard.check_orders(orders, spec, book, state, NOW)
    nav, prices = book.nav, book.prices
    start, after = book.qty, apply(book.qty, accepted)

    # Rate limits hold for the whole set.
    earlier = state.orders_today if state.day == TODAY else 0
    assert len(accepted) <= spec.max_orders_per_cycle
    assert earlier + len(accepted) <= max(spec.max_orders_per_day, earlier)
    if accepted:
        assert earlier + len(accepted) <= spec.max_orders_per_day

    data_age = (book.today - book.data_as_of).days
    for order in accepted:
        assert data_age <= spec.max_data_age_days
        assert abs(order.ref_price / book.last_close[order.symbol] - 1) <= spec.price_collar_pct + TOL
        if spec.cooldown_minutes and order.symbol in state.last_fill_at:
            assert NOW - state.last_fill_at[order.symbol] >= timedelta(minutes=spec.cooldown_minutes)
        if order.side == "buy":
            notional = order.qty * order.ref_price
            assert order.symbol in UNIVERSE
            assert notional <= spec.max_order_notional
            assert notional / nav <= spec.max_order_pct_nav
    # Exposure: within the limit where it started within it, and never above where it started.
    start_lev, after_lev = gross(start, prices) / nav, gross(after, prices) / nav
    assert after_lev <= max(spec.max_gross_leverage, start_lev) + TOL
    for symbol in SYMBOLS:
        assert weight(after, prices, symbol, nav) <= max(spec.max_weight, weight(start, prices, symbol, nav)) + TOL
    # Nothing goes short.
    assert all(q >= -1e-6 * max(1.0, start.get(s, 0.0)) for s, q in after.items())


@SETTINGS
@given(scenarios())
def test_blocking_never_increases_exposure(scenario):
    spec, book, state, orders = scenario
    accepted, blocked = guard.check_orders(orders, spec, book, state, NOW)
    nav, prices = book.nav, book.prices
    blocked_sells = [b for b in blocked if b.order.side == "sell"]
    # Sells are only ever held back by the data, collar and rate rules ...
    assert {b.rule for b in blocked_sells} <= SELL_RULES
    # ... and against the orders the guard had to let through or hold back for those rules,
    # every buy it blocks only lowers exposure, per symbol and in total.
    reference = apply(book.qty, [o for o in orders if not any(o is b.order for b in blocked_sells)])
    after = apply(book.qty, accepted)
    assert gross(after, prices) <= gross(reference, prices) * (1 + TOL) + TOL
    for symbol in SYMBOLS:
        assert abs(after.get(symbol, 0.0)) <= abs(reference.get(symbol, 0.0)) * (1 + TOL) + TOL
    if not blocked_sells:
        everything = apply(book.qty, orders)
        assert gross(after, prices) <= gross(everything, prices) * (1 + TOL) + TOL
    # Where it started within the limit, it ends within the limit.
    if gross(book.qty, prices) / nav <= spec.max_gross_leverage:
        assert gross(after, prices) / nav <= spec.max_gross_leverage + TOL


@SETTINGS
@given(scenarios())
def test_every_order_is_accounted_for_once_and_each_block_shows_its_numbers(scenario):
    spec, book, state, orders = scenario
    accepted, blocked = guard.check_orders(orders, spec, book, state, NOW)
    assert len(accepted) + len(blocked) == len(orders)
    remaining = list(orders)
    for order in accepted + [b.order for b in blocked]:
        index = next(i for i, o in enumerate(remaining) if o is order)
        remaining.pop(index)
    # Sells come first among the accepted orders; otherwise the engine's order is kept.
    sides = [o.side for o in accepted]
    assert sides == sorted(sides, key=lambda side: side != "sell")
    for block in blocked:
        assert block.message and isinstance(block.limit, float) and isinstance(block.value, float)
        if block.rule == "cooldown":
            assert block.value < block.limit
        elif block.rule in {"universe", "buying_power"}:
            pass
        elif block.rule == "price_collar":
            assert math.isnan(block.value) or block.value > block.limit
        else:
            assert block.value > block.limit, block
    # Pure: the same inputs give the same answer.
    assert guard.check_orders(orders, spec, book, state, NOW) == (accepted, blocked)


@SETTINGS
@given(scenarios())
def test_the_day_counter_after_a_cycle_never_exceeds_the_daily_limit(scenario):
    spec, book, state, orders = scenario
    earlier = state.orders_today if state.day == TODAY else 0
    state = msgspec.structs.replace(state, day=TODAY, orders_today=min(earlier, spec.max_orders_per_day))
    for _ in range(3):  # three cycles in one day
        accepted, _ = guard.check_orders(orders, spec, book, state, NOW)
        state = guard.after_orders(state, TODAY, len(accepted))
        assert state.orders_today <= spec.max_orders_per_day
