"""Circuit breakers: drawdown from the NAV high-water mark, the day's loss, and too many
rejects in a window. Each at, just below and just above its limit; the vectorised
`after_marks` agrees with `after_mark` mark by mark; the state survives a JSON round trip
(it is persisted so that a restart resets nothing)."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from guard_support import ACCOUNT, NOW, TODAY, risk, state
from hypothesis import given, settings
from hypothesis import strategies as st

from botctl.engine import guard

# --- drawdown from the high-water mark -------------------------------------------------------


@pytest.mark.parametrize("nav, trips", [(65_001.0, False), (65_000.0, False), (64_999.0, True)])
def test_drawdown_at_below_and_above(nav, trips):
    # The daily-loss breaker is set out of reach so only the drawdown is measured.
    spec = risk(max_drawdown=0.35, max_daily_loss=1.0)
    new, breach = guard.after_mark(state(high_water_mark=100_000.0, last_close_nav=70_000.0), spec, nav)
    assert (breach is not None) == trips
    if trips:
        rule, reason = breach
        assert rule == "max_drawdown" and "35.0%" in reason and "$100,000.00" in reason
    assert new.high_water_mark == 100_000.0 and new.last_close_nav == nav


def test_drawdown_of_exactly_the_limit_does_not_trip():
    spec = risk(max_drawdown=0.03, max_daily_loss=1.0)
    _, breach = guard.after_mark(state(high_water_mark=100_000.0, last_close_nav=97_000.0), spec, 97_000.0)
    assert breach is None


def test_the_high_water_mark_rises_with_nav_and_never_falls():
    spec = risk(max_daily_loss=0.5)
    s = state()
    for nav, hwm in [(100.0, 100.0), (120.0, 120.0), (110.0, 120.0), (125.0, 125.0), (90.0, 125.0)]:
        s, breach = guard.after_mark(s, spec, nav)
        assert s.high_water_mark == hwm and breach is None


def test_a_slow_drawdown_trips_without_any_bad_day():
    spec = risk(max_drawdown=0.20, max_daily_loss=0.08)
    s, navs = state(), [100_000 * 0.97 ** i for i in range(10)]  # -3% a day
    for i, nav in enumerate(navs):
        s, breach = guard.after_mark(s, spec, nav)
        if breach:
            break
    assert breach[0] == "max_drawdown" and navs[i] / 100_000 - 1 < -0.20 <= navs[i - 1] / 100_000 - 1


# --- the day's loss --------------------------------------------------------------------------


@pytest.mark.parametrize("nav, trips", [(92_001.0, False), (92_000.0, False), (91_999.0, True)])
def test_daily_loss_at_below_and_above(nav, trips):
    spec = risk(max_daily_loss=0.08)
    new, breach = guard.after_mark(state(high_water_mark=100_000.0, last_close_nav=100_000.0), spec, nav)
    assert (breach is not None) == trips
    if trips:
        rule, reason = breach
        assert rule == "max_daily_loss" and "8.0%" in reason and "$100,000.00" in reason
    assert new.last_close_nav == nav


def test_daily_loss_of_exactly_the_limit_does_not_trip():
    _, breach = guard.after_mark(state(high_water_mark=100_000.0, last_close_nav=100_000.0),
                                 risk(max_daily_loss=0.03), 97_000.0)
    assert breach is None


def test_the_days_loss_is_measured_from_the_previous_close_not_the_peak():
    spec = risk(max_daily_loss=0.05, max_drawdown=0.5)
    s = state(high_water_mark=100_000.0, last_close_nav=80_000.0)  # 20% under water already
    s, breach = guard.after_mark(s, spec, 77_000.0)  # -3.75% on the day
    assert breach is None
    _, breach = guard.after_mark(s, spec, 73_000.0)  # -5.2% on the day
    assert breach[0] == "max_daily_loss"


def test_the_first_mark_has_no_previous_close_and_cannot_trip():
    s, breach = guard.after_mark(state(), risk(max_daily_loss=0.01, max_drawdown=0.01), 50_000.0)
    assert breach is None and (s.high_water_mark, s.last_close_nav) == (50_000.0, 50_000.0)


def test_drawdown_is_reported_when_both_breakers_trip():
    _, breach = guard.after_mark(state(high_water_mark=100_000.0, last_close_nav=100_000.0),
                                 risk(max_drawdown=0.2, max_daily_loss=0.1), 70_000.0)
    assert breach[0] == "max_drawdown"


# --- after_marks: the vectorised path --------------------------------------------------------


def test_after_marks_of_nothing_changes_nothing():
    s = state(high_water_mark=5.0, last_close_nav=4.0)
    assert guard.after_marks(s, risk(), []) == (s, None)


def test_after_marks_stops_at_the_first_breach():
    spec = risk(max_daily_loss=0.05, max_drawdown=0.5)
    navs = [100.0, 103.0, 97.0, 90.0, 80.0, 120.0]  # day 3: -7.2% (day 2: -5.8% as well)
    new, breach = guard.after_marks(state(), spec, navs)
    index, tripped = breach
    assert (index, tripped.rule) == (2, "max_daily_loss") and "5.0%" in tripped.reason
    assert tripped.value == pytest.approx(97.0 / 103.0 - 1) and tripped.limit == -0.05
    assert (new.high_water_mark, new.last_close_nav) == (103.0, 97.0)


def test_after_marks_without_a_breach_keeps_the_last_mark_and_the_peak():
    new, breach = guard.after_marks(state(high_water_mark=110.0, last_close_nav=100.0), risk(), [101.0, 105.0, 102.0])
    assert breach is None and (new.high_water_mark, new.last_close_nav) == (110.0, 102.0)


def sequential(s, spec, navs):
    for i, nav in enumerate(navs):
        s, breach = guard.mark_breach(s, spec, nav)
        if breach is not None:
            return s, (i, breach)
    return s, None


@settings(max_examples=200, deadline=None)
@given(
    navs=st.lists(st.one_of(st.floats(50_000.0, 150_000.0), st.floats(1.0, 200_000.0), st.floats(-1_000.0, -1.0),
                            st.just(0.0)), max_size=40),
    hwm=st.one_of(st.just(0.0), st.floats(1.0, 200_000.0)),
    last=st.one_of(st.just(0.0), st.floats(1.0, 200_000.0), st.floats(-1_000.0, -1.0)),
    max_drawdown=st.floats(0.01, 0.9),
    max_daily_loss=st.floats(0.005, 0.5),
)
def test_after_marks_agrees_with_after_mark_one_by_one(navs, hwm, last, max_drawdown, max_daily_loss):
    spec = risk(max_drawdown=max_drawdown, max_daily_loss=max_daily_loss)
    start = state(high_water_mark=hwm, last_close_nav=last)
    assert guard.after_marks(start, spec, navs) == sequential(start, spec, navs)


@settings(max_examples=100, deadline=None)
@given(navs=st.lists(st.floats(80_000.0, 120_000.0), min_size=1, max_size=30), split=st.integers(0, 30))
def test_after_marks_in_two_spans_equals_one_span(navs, split):
    """The backtest marks span by span between rebalances: how the days are cut changes nothing."""
    spec = risk(max_drawdown=0.1, max_daily_loss=0.03)
    whole = guard.after_marks(state(), spec, navs)
    first, breach = guard.after_marks(state(), spec, navs[:split])
    if breach is not None:
        assert whole == (first, breach)
        return
    second, breach = guard.after_marks(first, spec, navs[split:])
    if breach is not None:
        breach = (breach[0] + len(navs[:split]), *breach[1:])
    assert whole == (second, breach)


# --- rejected orders in a window -------------------------------------------------------------


def rejects(spec, minutes_before_now):
    s, breaches = state(), []
    for m in minutes_before_now:
        s, breach = guard.after_reject(s, spec, NOW - timedelta(minutes=m))
        breaches.append(breach)
    return s, breaches


@pytest.mark.parametrize("count, trips", [(3, False), (4, False), (5, True)])
def test_max_rejects_at_below_and_above(count, trips):
    # The breaker trips on the `max_rejects`-th reject inside the window (accounts.yaml:
    # "max_rejects: 5 ... within this window: halts the account").
    s, breaches = rejects(risk(max_rejects=5, reject_window_minutes=60), [50, 40, 30, 20, 10][:count])
    assert all(b is None for b in breaches[:-1])
    assert (breaches[-1] is not None) == trips
    if trips:
        rule, reason = breaches[-1]
        assert rule == "max_rejects" and "5" in reason and "60 min" in reason
    assert len(s.reject_times) == count


def test_rejects_spread_wider_than_the_window_never_trip():
    s, breaches = rejects(risk(max_rejects=3, reject_window_minutes=60), [610, 540, 470, 400, 330, 260, 190, 120, 50])
    assert breaches == [None] * 9
    assert len(s.reject_times) == 1  # older ones are forgotten


@pytest.mark.parametrize("gap, trips", [(59, True), (60, True), (61, False)])
def test_the_reject_window_edge(gap, trips):
    # Two rejects `gap` minutes apart, a limit of two within 60 minutes.
    _, breaches = rejects(risk(max_rejects=2, reject_window_minutes=60), [gap, 0])
    assert (breaches[-1] is not None) == trips


# --- the state is persisted ------------------------------------------------------------------


def test_guard_state_survives_the_journal_round_trip():
    spec = risk()
    s, _ = guard.after_mark(state(), spec, 100_000.0)
    s, _ = guard.after_mark(s, spec, 97_000.0)
    s = guard.after_orders(s, TODAY, 4)
    s = guard.after_fill(s, "XLK", NOW)
    s, _ = guard.after_reject(s, spec, NOW + timedelta(minutes=3))
    decoded = msgspec.json.decode(msgspec.json.encode(s), type=guard.GuardState)
    assert decoded == s
    assert decoded.account == ACCOUNT and decoded.high_water_mark == 100_000.0 and decoded.orders_today == 4
    assert decoded.last_fill_at["XLK"] == NOW and decoded.last_fill_at["XLK"].tzinfo is not None
    # A restarted guard goes on from the stored high-water mark, not from scratch.
    _, breach = guard.after_mark(decoded, risk(max_drawdown=0.05), 94_000.0)
    assert breach is not None and breach[0] == "max_drawdown"


def test_after_fill_remembers_the_last_fill_per_symbol():
    s = guard.after_fill(state(), "A", NOW)
    later = NOW + timedelta(hours=1)
    s = guard.after_fill(s, "A", later)
    s = guard.after_fill(s, "B", NOW)
    assert s.last_fill_at == {"A": later, "B": NOW}
    assert guard.GuardState(account="x").last_fill_at == {}  # defaults are not shared


def test_after_fills_is_after_fill_for_each_in_turn():
    later = NOW + timedelta(hours=1)
    fills = [("A", NOW), ("B", NOW), ("A", later), ("C", later)]
    one_by_one = state()
    for symbol, at in fills:
        one_by_one = guard.after_fill(one_by_one, symbol, at)
    together = guard.after_fills(guard.after_fill(state(), "D", NOW), fills)
    assert together.last_fill_at == {"D": NOW, **one_by_one.last_fill_at}
    assert together.last_fill_at["A"] == later  # the last fill of a symbol counts
    assert guard.after_fills(one_by_one, []) == one_by_one


def test_guard_state_defaults():
    s = guard.GuardState(account="x")
    assert (s.high_water_mark, s.last_close_nav, s.day, s.orders_today, s.reject_times) == (0.0, 0.0, None, 0, [])


def test_a_book_sends_nothing_after_a_reject_trips_the_breaker_mid_cycle():
    """A broker reject that trips max_rejects stops the rest of the cycle's orders."""
    from datetime import date, datetime, timezone
    from pathlib import Path

    import msgspec

    from botctl.cli.common import Globals, load_plan
    from botctl.runtime.book import Book
    from botctl.spec.model import RiskSpec
    from botctl.strategy.bars import bars_from_frame
    from botctl.adapters.file_data import load_bars

    plan = load_plan(Globals(Path(__file__).resolve().parents[2], Path("unused.db"), None))
    account = msgspec.structs.replace(plan.accounts[0], risk=RiskSpec(max_rejects=1))
    bars = bars_from_frame(load_bars(), plan.symbols)
    book = Book(account, bars, run_id="t", namespace="t")
    real_submit = book.broker.submit

    def reject_first(order, now):  # the broker refuses the first order it sees
        if not book.broker.orders:
            book.broker.orders[order.client_order_id] = msgspec.structs.replace(order, status="rejected", reject_reason="test")
            return book.broker.orders[order.client_order_id], []
        return real_submit(order, now)

    book.broker.submit = reject_first
    row = bars.index_of(date(2021, 3, 1))
    book.rebalance(row, book.due(bars.dates[row], force=True), datetime(2021, 3, 1, 15, tzinfo=timezone.utc))
    assert book.halt and book.halt.startswith("max_rejects")
    assert [o.status for o in book.orders] == ["rejected"]
    assert book.blocks.get("halted", 0) >= 1
