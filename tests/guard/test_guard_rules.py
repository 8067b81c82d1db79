"""Each pre-trade rule of the risk guard at, just below and just above its limit.

`check_orders` is pure: orders, limits, the account as the guard sees it and the guard's memory
in; (accepted, blocked) out, each Block naming its rule and the two numbers it compared.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from guard_support import (
    NOW,
    PRICE,
    TODAY,
    UNIVERSE,
    buy,
    check,
    portfolio,
    risk,
    sell,
    state,
)

from botctl.engine import guard
from botctl.spec.model import RiskSpec


def one_block(blocked, rule: str) -> guard.Block:
    assert len(blocked) == 1, blocked
    block = blocked[0]
    assert block.rule == rule
    assert isinstance(block.limit, float) and isinstance(block.value, float)
    assert block.message
    return block


# --- defaults --------------------------------------------------------------------------------


def test_risk_defaults_are_the_documented_safe_values():
    spec = RiskSpec()
    assert (spec.max_weight, spec.max_gross_leverage, spec.max_order_notional, spec.max_order_pct_nav) == (1.0, 1.5, 1e6, 1.0)
    assert (spec.price_collar_pct, spec.max_orders_per_cycle, spec.max_orders_per_day) == (0.10, 40, 80)
    assert (spec.cooldown_minutes, spec.max_data_age_days) == (0, 5)
    assert (spec.max_drawdown, spec.max_daily_loss, spec.max_rejects, spec.reject_window_minutes) == (0.35, 0.08, 5, 60)


def test_an_ordinary_rebalance_passes_the_default_limits():
    orders = [sell("A", 100), buy("B", 300), buy("C", 300)]
    accepted, blocked = check(orders, book=portfolio(qty={"A": 400}))
    assert blocked == []
    assert accepted == orders  # sells first, then buys, each once


# --- stale data ------------------------------------------------------------------------------


@pytest.mark.parametrize("age, ok", [(4, True), (5, True), (6, False)])
def test_stale_data_at_below_and_above_the_limit(age, ok):
    accepted, blocked = check([buy("A", 1)], risk(max_data_age_days=5), portfolio(data_age=age))
    if ok:
        assert len(accepted) == 1 and blocked == []
    else:
        block = one_block(blocked, "stale_data")
        assert (block.limit, block.value) == (5.0, 6.0) and accepted == []


def test_no_data_at_all_is_stale():
    _, blocked = check([buy("A", 1)], book=portfolio(data_age=None))
    assert one_block(blocked, "stale_data").value == math.inf


def test_stale_data_blocks_sells_too():
    _, blocked = check([sell("A", 1)], risk(max_data_age_days=2), portfolio(qty={"A": 10}, data_age=3))
    assert one_block(blocked, "stale_data").order == sell("A", 1)


# --- price collar ----------------------------------------------------------------------------


@pytest.mark.parametrize("ref, pct", [(109.5, 0.10), (90.5, 0.10), (90.0, 0.10), (120.0, 0.20), (80.0, 0.20)])
def test_price_collar_accepts_moves_up_to_the_limit(ref, pct):
    accepted, blocked = check([buy("A", 1, price=ref)], risk(price_collar_pct=pct))
    assert blocked == [] and len(accepted) == 1


@pytest.mark.parametrize("ref", [110.5, 89.5])
def test_price_collar_blocks_a_move_just_over_the_limit(ref):
    accepted, blocked = check([buy("A", 1, price=ref)], risk(price_collar_pct=0.10))
    block = one_block(blocked, "price_collar")
    assert block.limit == 0.10 and block.value == pytest.approx(0.105)
    assert accepted == []


@pytest.mark.parametrize("ref, pct", [(110.0, 0.10), (105.0, 0.05)])
def test_price_collar_accepts_a_move_of_exactly_the_limit(ref, pct):
    accepted, blocked = check([buy("A", 1, price=ref)], risk(price_collar_pct=pct))
    assert blocked == [] and len(accepted) == 1


def test_price_collar_without_a_last_close_blocks():
    book = portfolio(last_close={"B": PRICE})
    _, blocked = check([buy("A", 1)], book=book)
    assert one_block(blocked, "price_collar").value == math.inf


@pytest.mark.parametrize("ref", [0.0, -5.0, math.nan, math.inf])
def test_an_unusable_reference_price_is_blocked(ref):
    _, blocked = check([buy("A", 1, price=ref)])
    block = one_block(blocked, "price_collar")
    assert math.isnan(block.value)


def test_price_collar_blocks_sells_too():
    _, blocked = check([sell("A", 5, price=150.0)], book=portfolio(qty={"A": 10}))
    assert one_block(blocked, "price_collar").value == pytest.approx(0.5)


# --- orders per cycle and per day ------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, 4])
def test_max_orders_per_cycle_at_below_and_above(count):
    orders = [buy(s, 1) for s in "ABCD"[:count]]
    accepted, blocked = check(orders, risk(max_orders_per_cycle=3))
    assert accepted == orders[:3]
    if count <= 3:
        assert blocked == []
    else:
        block = one_block(blocked, "max_orders_per_cycle")
        assert (block.limit, block.value) == (3.0, 4.0) and block.order == orders[3]


def test_orders_per_cycle_go_to_sells_first():
    orders = [buy("A", 1), buy("B", 1), sell("C", 1), sell("D", 1)]
    accepted, blocked = check(orders, risk(max_orders_per_cycle=2), portfolio(qty={"C": 5, "D": 5}))
    assert accepted == [sell("C", 1), sell("D", 1)]
    assert [b.rule for b in blocked] == ["max_orders_per_cycle"] * 2
    assert {b.order for b in blocked} == {buy("A", 1), buy("B", 1)}


def test_a_zero_order_limit_blocks_everything():
    accepted, blocked = check([sell("A", 1), buy("B", 1)], risk(max_orders_per_cycle=0), portfolio(qty={"A": 5}))
    assert accepted == [] and len(blocked) == 2


@pytest.mark.parametrize("count, accepted_count", [(1, 1), (2, 2), (3, 2)])
def test_max_orders_per_day_counts_the_days_earlier_orders(count, accepted_count):
    orders = [buy(s, 1) for s in "ABC"[:count]]
    accepted, blocked = check(orders, risk(max_orders_per_day=5), guard_state=state(day=TODAY, orders_today=3))
    assert len(accepted) == accepted_count
    if count == 3:
        block = one_block(blocked, "max_orders_per_day")
        assert (block.limit, block.value) == (5.0, 6.0)
    else:
        assert blocked == []


def test_a_new_day_resets_the_daily_count():
    yesterday = state(day=TODAY - timedelta(days=1), orders_today=5)
    accepted, blocked = check([buy("A", 1)], risk(max_orders_per_day=5), guard_state=yesterday)
    assert len(accepted) == 1 and blocked == []


def test_after_orders_accumulates_within_a_day_and_resets_on_the_next():
    s = guard.after_orders(state(), TODAY, 3)
    s = guard.after_orders(s, TODAY, 2)
    assert (s.day, s.orders_today) == (TODAY, 5)
    s = guard.after_orders(s, TODAY + timedelta(days=1), 1)
    assert (s.day, s.orders_today) == (TODAY + timedelta(days=1), 1)


# --- cooldown after a fill -------------------------------------------------------------------


@pytest.mark.parametrize("minutes_ago, ok", [(29, False), (30, True), (31, True)])
def test_cooldown_at_below_and_above(minutes_ago, ok):
    filled = guard.after_fill(state(), "A", NOW - timedelta(minutes=minutes_ago))
    accepted, blocked = check([buy("A", 1), buy("B", 1)], risk(cooldown_minutes=30), guard_state=filled)
    if ok:
        assert blocked == [] and len(accepted) == 2
    else:
        block = one_block(blocked, "cooldown")
        assert block.order.symbol == "A" and (block.limit, block.value) == (30.0, 29.0)
        assert [o.symbol for o in accepted] == ["B"]  # other symbols are not cooling down


def test_cooldown_zero_is_off():
    filled = guard.after_fill(state(), "A", NOW)
    accepted, blocked = check([buy("A", 1)], risk(cooldown_minutes=0), guard_state=filled)
    assert blocked == [] and len(accepted) == 1


def test_cooldown_applies_to_sells():
    filled = guard.after_fill(state(), "A", NOW - timedelta(minutes=1))
    _, blocked = check([sell("A", 1)], risk(cooldown_minutes=10), portfolio(qty={"A": 5}), filled)
    assert one_block(blocked, "cooldown").value == 1.0


# --- universe --------------------------------------------------------------------------------


def test_buying_outside_the_plan_universes_is_blocked():
    accepted, blocked = check([buy("ZZZ", 1), buy("A", 1)])
    assert one_block(blocked, "universe").order == buy("ZZZ", 1)
    assert accepted == [buy("A", 1)]


def test_selling_a_symbol_outside_the_universe_is_allowed():
    accepted, blocked = check([sell("ZZZ", 3)], book=portfolio(qty={"ZZZ": 3}))
    assert accepted == [sell("ZZZ", 3)] and blocked == []


# --- order size ------------------------------------------------------------------------------


@pytest.mark.parametrize("shares, ok", [(99, True), (100, True), (101, False)])
def test_max_order_notional_at_below_and_above(shares, ok):
    accepted, blocked = check([buy("A", shares)], risk(max_order_notional=10_000.0))
    if ok:
        assert blocked == [] and len(accepted) == 1
    else:
        block = one_block(blocked, "max_order_notional")
        assert (block.limit, block.value) == (10_000.0, 10_100.0)


@pytest.mark.parametrize("shares, ok", [(99, True), (100, True), (101, False)])
def test_max_order_pct_nav_at_below_and_above(shares, ok):
    accepted, blocked = check([buy("A", shares)], risk(max_order_pct_nav=0.10))
    if ok:
        assert blocked == [] and len(accepted) == 1
    else:
        block = one_block(blocked, "max_order_pct_nav")
        assert block.limit == 0.10 and block.value == pytest.approx(0.101)


# --- exposure --------------------------------------------------------------------------------


@pytest.mark.parametrize("shares, ok", [(149, True), (150, True), (151, False)])
def test_max_weight_counts_the_existing_position(shares, ok):
    book = portfolio(qty={"A": 100})  # $10,000 of $100,000 already
    accepted, blocked = check([buy("A", shares)], risk(max_weight=0.25), book)
    if ok:
        assert blocked == [] and len(accepted) == 1
    else:
        block = one_block(blocked, "max_weight")
        assert block.limit == 0.25 and block.value == pytest.approx(0.251)


@pytest.mark.parametrize("shares, ok", [(499, True), (500, True), (501, False)])
def test_max_gross_leverage_at_below_and_above(shares, ok):
    book = portfolio(qty={"A": 1000})  # 1.0x already
    accepted, blocked = check([buy("B", shares)], risk(max_gross_leverage=1.5), book)
    if ok:
        assert blocked == [] and len(accepted) == 1
    else:
        block = one_block(blocked, "max_gross_leverage")
        assert block.limit == 1.5 and block.value == pytest.approx(1.501)


@pytest.mark.parametrize("nav", [0.0, -1_000.0])
def test_no_buy_without_equity(nav):
    accepted, blocked = check([buy("A", 1), sell("B", 1)], book=portfolio(nav=nav, qty={"B": 1}))
    block = one_block(blocked, "buying_power")
    assert block.value == nav and block.order == buy("A", 1)
    assert accepted == [sell("B", 1)]


def test_a_little_equity_is_enough_for_a_little_buy():
    accepted, blocked = check([buy("A", 0.01)], book=portfolio(nav=1.0))
    assert blocked == [] and len(accepted) == 1


# --- sells are never blocked by exposure rules -----------------------------------------------


def test_sells_pass_every_exposure_rule_even_far_over_the_limits():
    # 5x gross, 3x in A alone, on a tiny NAV, with limits so tight no buy could pass.
    book = portfolio(nav=20_000.0, qty={"A": 600, "B": 400, "ZZZ": 10})
    tight = risk(max_weight=0.01, max_gross_leverage=0.1, max_order_notional=1.0, max_order_pct_nav=0.001)
    orders = [sell("A", 600), sell("B", 100), sell("ZZZ", 10)]
    accepted, blocked = check(orders, tight, book)
    assert accepted == orders and blocked == []


def test_reducing_sells_pass_while_buys_over_the_limit_are_blocked():
    book = portfolio(qty={"A": 2000})  # 2.0x, over the 1.5x limit
    accepted, blocked = check([buy("B", 10), sell("A", 100)], book=book)
    assert accepted == [sell("A", 100)]
    block = one_block(blocked, "max_gross_leverage")
    assert block.value == pytest.approx((1900 + 10) * PRICE / 100_000)


def test_a_sell_that_opens_a_short_is_held_to_the_leverage_limit():
    book = portfolio(qty={"A": 100})  # 0.1x long
    accepted, _ = check([sell("A", 2_100)], risk(max_gross_leverage=1.5), book)  # -> 2.0x short
    assert accepted == []


# --- cumulative within one order list --------------------------------------------------------


def test_buys_are_checked_cumulatively_against_gross_leverage():
    book = portfolio(qty={"A": 1000})  # 1.0x
    orders = [buy("B", 300), buy("C", 300)]  # 1.3x then 1.6x
    accepted, blocked = check(orders, risk(max_gross_leverage=1.5), book)
    assert accepted == [buy("B", 300)]
    block = one_block(blocked, "max_gross_leverage")
    assert block.order == buy("C", 300) and block.value == pytest.approx(1.6)


def test_buys_of_one_symbol_are_checked_cumulatively_against_its_weight():
    orders = [buy("A", 200), buy("A", 200)]  # 20% then 40% of NAV
    accepted, blocked = check(orders, risk(max_weight=0.3))
    assert accepted == [buy("A", 200)]
    assert one_block(blocked, "max_weight").value == pytest.approx(0.4)


def test_sells_in_the_list_make_room_for_the_buys_whatever_the_order():
    book = portfolio(qty={"A": 1500})  # 1.5x: at the limit
    orders = [buy("B", 500), sell("A", 500)]
    accepted, blocked = check(orders, book=book)
    assert blocked == [] and accepted == [sell("A", 500), buy("B", 500)]
    alone, blocked_alone = check([buy("B", 500)], book=book)
    assert alone == [] and one_block(blocked_alone, "max_gross_leverage").value == pytest.approx(2.0)


def test_a_blocked_buy_takes_no_room_from_the_next():
    book = portfolio(qty={"A": 1000})
    orders = [buy("B", 600), buy("C", 400)]  # B alone -> 1.6x (blocked); C -> 1.4x
    accepted, blocked = check(orders, risk(max_gross_leverage=1.5), book)
    assert accepted == [buy("C", 400)]
    assert one_block(blocked, "max_gross_leverage").order == buy("B", 600)


def test_a_blocked_order_takes_no_slot_in_the_cycle():
    accepted, blocked = check([buy("ZZZ", 1), buy("A", 1)], risk(max_orders_per_cycle=1))
    assert accepted == [buy("A", 1)]
    assert one_block(blocked, "universe").order == buy("ZZZ", 1)


def test_the_inputs_are_not_changed():
    book = portfolio(qty={"A": 1000})
    before = (dict(book.qty), dict(book.prices))
    s = state(day=TODAY, orders_today=1)
    check([buy("B", 600), sell("A", 10)], book=book, guard_state=s)
    assert (book.qty, book.prices) == before and s == state(day=TODAY, orders_today=1)


def test_every_order_is_either_accepted_or_blocked_exactly_once():
    book = portfolio(qty={"A": 1000, "C": 10})
    orders = [buy("B", 600), sell("A", 10), buy("ZZZ", 1), buy("D", 1, price=200.0), sell("C", 10), buy("B", 1),
              buy("C", 1)]
    accepted, blocked = check(orders, risk(max_gross_leverage=1.5, max_orders_per_cycle=3), book)
    assert sorted(map(repr, accepted + [b.order for b in blocked])) == sorted(map(repr, orders))
    assert {b.rule for b in blocked} == {"max_gross_leverage", "universe", "price_collar", "max_orders_per_cycle"}
    assert accepted == [sell("A", 10), sell("C", 10), buy("B", 1)]
    assert set(UNIVERSE) >= {o.symbol for o in accepted}


# --- every limit inclusive up to rounding, the same way ---------------------------------------


def test_a_full_nav_order_a_rounding_error_over_the_limit_passes_every_rule():
    # A weight-1.0 fallback sized from float prices: 1.0000000000000002 of NAV.
    nav = 100_000.0
    notional = nav * (1 + 2.220446049250313e-16)
    order = buy("A", notional / PRICE)
    accepted, blocked = check([order], risk(max_order_pct_nav=1.0, max_weight=1.0, max_gross_leverage=1.0,
                                            max_order_notional=nav), portfolio(nav=nav))
    assert blocked == [] and accepted == [order]


@pytest.mark.parametrize("limit", ["max_order_pct_nav", "max_weight", "max_gross_leverage", "max_order_notional"])
def test_every_size_limit_blocks_a_real_excess_the_same_way(limit):
    nav = 100_000.0
    values = {"max_order_pct_nav": 0.5, "max_weight": 0.5, "max_gross_leverage": 0.5, "max_order_notional": 50_000.0}
    spec = risk(**{"max_order_pct_nav": 1.0, "max_weight": 1.0, "max_gross_leverage": 1.5,
                   "max_order_notional": 1e9, limit: values[limit]})
    at_limit = check([buy("A", 500 * (1 + 1e-15))], spec, portfolio(nav=nav))
    over = check([buy("A", 500 * (1 + 1e-6))], spec, portfolio(nav=nav))
    assert at_limit[1] == [] and [b.rule for b in over[1]] == [limit]
