"""The risk guard: a second opinion on every order, and circuit breakers. Pure.

`check_orders` takes the engine's proposed orders with the account's state and returns the
ones it accepts and the ones it blocks, each block naming its rule and the numbers compared.
Sells are checked first and buys after, cumulatively, so the limits hold for the whole set:
blocking an order never increases exposure, because a blocked buy is simply not bought and
a sell is only blocked by the data, collar and rate rules, or when it would open a short.

`after_mark` and `after_reject` update the persisted breaker state and say when an account
must halt: drawdown from the NAV high-water mark, the day's loss, or too many rejected orders
or broker errors within a window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

import msgspec
import numpy as np

from botctl.records import SubmitOrder
from botctl.spec.model import RiskSpec
from botctl.strategy.bars import Bars


# Limits are inclusive: a value that equals its limit up to float rounding passes. Every limit
# of `check_orders` and every breaker is compared through `over`/`under`, so all of them agree
# (a fallback of weight 1.0 sized from float prices comes out at 1.0000000000000002 of NAV).
EPSILON = 1e-9


def over(value: float, limit: float) -> bool:
    """`value` exceeds `limit` by more than rounding (relative to the limit's size)."""
    return value > limit + EPSILON * max(1.0, abs(limit))


def under(value: float, floor: float) -> bool:
    """`value` is below `floor` by more than rounding."""
    return value < floor - EPSILON * max(1.0, abs(floor))


class Block(msgspec.Struct, frozen=True):
    rule: str
    message: str
    order: SubmitOrder
    limit: float
    value: float


class GuardState(msgspec.Struct, frozen=True, kw_only=True):
    """What the guard remembers between cycles. Persisted, so a restart resets nothing."""

    account: str
    high_water_mark: float = 0.0
    last_close_nav: float = 0.0
    day: date | None = None  # the day `orders_today` counts
    orders_today: int = 0
    last_fill_at: dict[str, datetime] = {}
    reject_times: list[datetime] = []


class Portfolio(msgspec.Struct, frozen=True, kw_only=True):
    """The account as the guard sees it when orders are proposed."""

    nav: float
    qty: dict[str, float]
    prices: dict[str, float]
    last_close: dict[str, float]
    universe: frozenset[str]  # what the plan may trade (benchmarks that are only read are not in it)
    data_as_of: date | None
    today: date
    buying_power: float | None = None  # what the broker would let us buy; None when unknown
    # Symbols whose move beyond the collar `judge_bars` accepted as the market's (a crash day):
    # the per-order collar does not block them a second time.
    accepted_moves: frozenset[str] = frozenset()


# How far back `suspect_bars` looks for a symbol's previous close (a few missing days are
# tolerated; a symbol silent for longer is treated as newly listed).
LOOKBACK_ROWS = 10
# A move beyond the price collar is judged against the day's market move and the symbol's own
# volatility, so a crash day (March 2020: sector ETFs -14% with the market -11%) is not bad
# data while a x5 spike or a missed split still is. The market move is the median move of the
# data's symbols (with at least MIN_MARKET_SYMBOLS of them, else 0), clipped to
# +/-MAX_MARKET_MOVE so a whole file off by a factor cannot pass as the market. The symbol's
# volatility is the robust (median absolute deviation) standard deviation of its last
# VOLATILITY_ROWS daily returns, so an earlier bad bar does not widen the limit; with fewer
# than MIN_VOLATILITY_ROWS of them it is 0 and the plain collar applies.
VOLATILITY_ROWS = 63
MIN_VOLATILITY_ROWS = 20
VOLATILITY_WIDTHS = 5.0
MIN_MARKET_SYMBOLS = 3
MAX_MARKET_MOVE = 0.25
MAD_TO_SIGMA = 1.4826


class MoveVerdict(msgspec.Struct, frozen=True):
    """What `judge_bars` found: the (symbol, why) a cycle must not act on, and the moves beyond
    the fixed collar it accepted as real (the decisions the market/volatility rule moved)."""

    suspect: tuple[tuple[str, str], ...]
    accepted: tuple[tuple[str, str], ...]


CLEAN = MoveVerdict((), ())


def market_move(bars: Bars, row: int, field: str = "close") -> float:
    """The day's market move at `row`: the median move of every symbol in `bars` from its
    previous close to its `field` price (0 with fewer than MIN_MARKET_SYMBOLS), clipped."""
    if row < 1:
        return 0.0
    now, previous = getattr(bars, field)[row], bars.close[row - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        moves = now / previous - 1
    moves = moves[np.isfinite(moves) & (now > 0) & (previous > 0)]
    if moves.size < MIN_MARKET_SYMBOLS:
        return 0.0
    return float(np.clip(np.median(moves), -MAX_MARKET_MOVE, MAX_MARKET_MOVE))


def volatility(bars: Bars, row: int, column: int) -> float:
    """Robust daily volatility of a symbol's closes up to `row - 1` (what is known before the
    bar at `row`), 0 when too few returns are known."""
    closes = bars.close[max(0, row - VOLATILITY_ROWS - 1): row, column]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = closes[1:] / closes[:-1] - 1
    returns = returns[np.isfinite(returns) & (closes[1:] > 0) & (closes[:-1] > 0)]
    if returns.size < MIN_VOLATILITY_ROWS:
        return 0.0
    return float(MAD_TO_SIGMA * np.median(np.abs(returns - np.median(returns))))


def move_limit(collar_pct: float, sigma: float) -> float:
    """How far a move beyond the collar may differ from the market's before it is suspect."""
    return collar_pct + VOLATILITY_WIDTHS * sigma


def suspect_bars(bars: Bars, row: int, symbols: Sequence[str], collar_pct: float,
                 columns: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """(symbol, why) for each bar of session `row` a cycle must not decide on: a symbol
    that traded in the sessions before but has no usable bar now, a price that is not
    positive, or a close beyond the price collar from the previous close that the market's
    move and the symbol's volatility do not explain (`judge_bars`). Bad data moves rankings
    as well as prices, so one suspect bar stops the whole cycle."""
    return list(judge_bars(bars, row, symbols, collar_pct, columns).suspect)


def suspect_fill_prices(bars: Bars, row: int, symbols: Sequence[str], collar_pct: float,
                        columns: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """(symbol, why) for each opening price of session `row` a fill must not happen at: not a
    price, or beyond the collar from the previous close by more than the market's opening move
    and the symbol's volatility explain. A symbol with no bar at all is not listed (the
    broker cancels its order: there is nothing to fill at)."""
    return list(judge_bars(bars, row, symbols, collar_pct, columns, field="open").suspect)


def suspect_closes(bars: Bars, first: int, last: int, columns: Sequence[int], collar_pct: float,
                   block: np.ndarray | None = None) -> np.ndarray | None:
    """Mask [row, column] over rows first..last of the closes a NAV mark must not use (by the
    rule of `judge_bars`: not a price, or a move the market and volatility do not explain),
    or None when there are none; the mark keeps the last good price instead, so one bad close
    cannot lift the high-water mark or trip a breaker. `block` may give the closes of rows
    first-1..last at `columns`, already read."""
    if first < 1 or not len(columns):
        return None
    if block is None:
        block = bars.close[first - 1: last + 1].take(columns, axis=1)
    closes, previous = block[1:], block[:-1]
    odd = ~((closes <= previous * (1 + collar_pct + EPSILON)) & (closes >= previous * (1 - collar_pct - EPSILON))
            & (previous > 0) & (closes < np.inf))
    if not odd.any():  # the common case: every close within the collar of the one before
        return None
    mask = ~np.isnan(closes) & (~(closes > 0) | ~np.isfinite(closes))
    for i, j in zip(*np.nonzero(odd & ~np.isnan(closes) & ~mask)):  # few: judge each one whole
        if judge_bars(bars, first + int(i), [bars.symbols[columns[j]]], collar_pct, [columns[j]]).suspect:
            mask[i, j] = True
    return mask if mask.any() else None


def judge_bars(bars: Bars, row: int, symbols: Sequence[str], collar_pct: float,
               columns: Sequence[int] | np.ndarray | None = None,
               *, field: str = "close") -> MoveVerdict:
    columns = columns if columns is not None else [bars.symbols.index(s) for s in symbols]
    prices = getattr(bars, field)
    if row >= 1:  # the common case, cheaply: every price finite, positive and within the collar
        previous, now = bars.close[row - 1].take(columns), prices[row].take(columns)
        if ((now <= previous * (1 + collar_pct + EPSILON)) & (now >= previous * (1 - collar_pct - EPSILON))
                & (previous > 0) & (now < np.inf)).all():  # False for NaN: no bar goes the slow way
            return CLEAN
    else:
        now, previous = prices[row, columns], np.full(len(columns), np.nan)
    for i in np.flatnonzero(np.isnan(previous)).tolist():  # a gap, or not listed yet: the last close in the lookback
        before = bars.close[max(0, row - LOOKBACK_ROWS): row, columns[i]]
        seen = before[~np.isnan(before)]
        previous[i] = seen[-1] if seen.size else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        move = now / previous - 1
    missing = np.isnan(now) & ~np.isnan(previous)
    if field == "open":
        missing[:] = False  # no bar to fill at: the order is canceled, not filled at a bad price
    # `now > 0` is False for NaN too; a symbol with no price now or before is simply not listed yet.
    not_price = ~np.isnan(now) & (~(now > 0) | ~np.isfinite(now))
    beyond = (np.abs(move) > collar_pct + EPSILON) & ~not_price & ~np.isnan(now)
    if not (missing.any() or not_price.any() or beyond.any()):
        return CLEAN
    day = bars.dates[row]
    market = market_move(bars, row, field) if beyond.any() else 0.0
    word = "closed" if field == "close" else "opened"
    suspect, accepted = [], []
    for i in np.flatnonzero(missing | not_price | beyond).tolist():
        symbol, price, last = symbols[i], float(now[i]), float(previous[i])
        if missing[i]:
            suspect.append((symbol, f"{symbol} has no bar for {day} (it had one on an earlier session)"))
            continue
        if not_price[i]:
            suspect.append((symbol, f"{symbol} {word} at {price:g} on {day}, which is not a price"))
            continue
        sigma = volatility(bars, row, columns[i])
        limit = move_limit(collar_pct, sigma)
        said = (f"{symbol} {word} at {price:.2f} on {day}, {move[i]:+.1%} from {last:.2f} with the market "
                f"{market:+.1%}")
        if abs(move[i] - market) > limit + EPSILON:
            suspect.append((symbol, f"{said}, outside the {collar_pct:.0%} price collar widened by its volatility "
                                    f"({sigma:.1%} a day) to {limit:.1%} from the market's move"))
        else:
            accepted.append((symbol, f"{said}: beyond the {collar_pct:.0%} price collar, within {limit:.1%} "
                                     f"of the market's move given its volatility ({sigma:.1%} a day)"))
    return MoveVerdict(tuple(suspect), tuple(accepted))


def check_orders(orders: list[SubmitOrder], risk: RiskSpec, book: Portfolio, state: GuardState,
                 now: datetime) -> tuple[list[SubmitOrder], list[Block]]:
    accepted: list[SubmitOrder] = []
    blocked: list[Block] = []
    if not orders:  # most sessions of a book that decides every session
        return accepted, blocked
    orders_today = state.orders_today if state.day == book.today else 0
    qty = dict(book.qty)

    def value_of(symbol: str) -> float:
        return qty.get(symbol, 0.0) * book.prices.get(symbol, 0.0)

    # Gross exposure is kept running, each accepted order moving it by its symbol's change, so a
    # cycle of n orders costs O(n), not O(n x holdings) as a re-sum for every buy would.
    running_gross = sum(abs(value_of(s)) for s in qty)

    buying_power = book.buying_power  # spent by each accepted buy, refilled by each accepted sell
    data_age = (book.today - book.data_as_of).days if book.data_as_of else math.inf
    for order in sorted(orders, key=lambda o: o.side != "sell"):
        notional = order.qty * order.ref_price
        buy = order.side == "buy"
        reason: _Refusal | None = None
        if data_age > risk.max_data_age_days:
            reason = ("stale_data", f"last bar is {data_age} days old, over {risk.max_data_age_days}",
                      risk.max_data_age_days, data_age)
        elif not math.isfinite(order.ref_price) or order.ref_price <= 0:
            reason = ("price_collar", "no usable reference price", risk.price_collar_pct, math.nan)
        else:
            close = book.last_close.get(order.symbol)
            move = abs(order.ref_price / close - 1) if close else math.inf
            if over(move, risk.price_collar_pct) and order.symbol not in book.accepted_moves:
                reason = ("price_collar", f"{order.symbol} at {order.ref_price:.4f} is {move:.1%} from the last close "
                          f"{close if close else 'unknown'}, over {risk.price_collar_pct:.1%}", risk.price_collar_pct, move)
        if reason is None and len(accepted) >= risk.max_orders_per_cycle:
            reason = ("max_orders_per_cycle", f"already {len(accepted)} orders this cycle", risk.max_orders_per_cycle, len(accepted) + 1)
        if reason is None and orders_today + len(accepted) >= risk.max_orders_per_day:
            reason = ("max_orders_per_day", f"already {orders_today + len(accepted)} orders today", risk.max_orders_per_day,
                      orders_today + len(accepted) + 1)
        if reason is None and risk.cooldown_minutes and order.symbol in state.last_fill_at:
            since = (now - state.last_fill_at[order.symbol]).total_seconds() / 60
            if since < risk.cooldown_minutes:
                reason = ("cooldown", f"{order.symbol} filled {since:.0f} min ago, cooldown {risk.cooldown_minutes} min",
                          risk.cooldown_minutes, since)
        if reason is None and not buy and over(order.qty, qty.get(order.symbol, 0.0)):
            reason = ("no_short", f"sell of {order.qty:g} {order.symbol} exceeds the {qty.get(order.symbol, 0.0):g} held",
                      qty.get(order.symbol, 0.0), order.qty)
        if reason is None and buy:
            reason = _buy_limits(order, notional, risk, book, value_of, running_gross)
            if reason is None and buying_power is not None and over(notional, buying_power):
                reason = ("buying_power", f"order of ${notional:,.2f} exceeds the ${max(buying_power, 0):,.2f} of buying power left",
                          buying_power, notional)
        if reason is not None:
            rule, message, limit, value = reason
            blocked.append(Block(rule=rule, message=message, order=order, limit=float(limit), value=float(value)))
            continue
        accepted.append(order)
        before = abs(value_of(order.symbol))
        qty[order.symbol] = qty.get(order.symbol, 0.0) + (order.qty if buy else -order.qty)
        running_gross += abs(value_of(order.symbol)) - before
        if buying_power is not None:
            buying_power += -notional if buy else notional
    return accepted, blocked


# (rule, message, limit, value) of an order the guard refuses
_Refusal = tuple[str, str, float, float]


def _buy_limits(order: SubmitOrder, notional: float, risk: RiskSpec, book: Portfolio,
                value_of: Callable[[str], float], gross: float) -> _Refusal | None:
    nav = book.nav
    if order.symbol not in book.universe:
        return ("universe", f"{order.symbol} is not in the plan's universes", 0, 1)
    if over(notional, risk.max_order_notional):
        return ("max_order_notional", f"order of ${notional:,.2f} over ${risk.max_order_notional:,.2f}",
                risk.max_order_notional, notional)
    if nav <= 0:
        return ("buying_power", "no equity to buy with", 0, nav)
    if over(notional / nav, risk.max_order_pct_nav):
        return ("max_order_pct_nav", f"order is {notional / nav:.1%} of NAV, over {risk.max_order_pct_nav:.1%}",
                risk.max_order_pct_nav, notional / nav)
    weight = (value_of(order.symbol) + notional) / nav
    if over(weight, risk.max_weight):
        return ("max_weight", f"{order.symbol} would be {weight:.1%} of NAV, over {risk.max_weight:.1%}", risk.max_weight, weight)
    leverage = (gross + notional) / nav
    if over(leverage, risk.max_gross_leverage):
        return ("max_gross_leverage", f"gross leverage would be {leverage:.2f}x, over {risk.max_gross_leverage:.2f}x",
                risk.max_gross_leverage, leverage)
    return None


def after_orders(state: GuardState, today: date, count: int) -> GuardState:
    already = state.orders_today if state.day == today else 0
    return msgspec.structs.replace(state, day=today, orders_today=already + count)


def after_fill(state: GuardState, symbol: str, at: datetime) -> GuardState:
    return msgspec.structs.replace(state, last_fill_at={**state.last_fill_at, symbol: at})


def after_fills(state: GuardState, fills: Sequence[tuple[str, datetime]]) -> GuardState:
    """`after_fill` for each (symbol, time) in order, in one copy of the state: a session's
    open fills a whole rebalance at once."""
    if not fills:
        return state
    return msgspec.structs.replace(state, last_fill_at={**state.last_fill_at, **dict(fills)})


class Breach(msgspec.Struct, frozen=True):
    """A tripped breaker: its rule, a sentence for people, and the numbers compared."""

    rule: str
    reason: str
    value: float  # drawdown or day's loss as a fraction (<= 0), or the reject count
    limit: float  # the configured limit, in the same unit (the drawdown floor as a negative fraction)


def mark_breach(state: GuardState, risk: RiskSpec, nav: float) -> tuple[GuardState, Breach | None]:
    """Take a closing NAV mark: raise the high-water mark, and say which breaker trips, if one
    does. The day's loss is measured from the previous closing NAV."""
    hwm = max(state.high_water_mark, nav)
    previous = state.last_close_nav
    breach = None
    if hwm > 0 and under(nav / hwm - 1, -risk.max_drawdown):
        breach = Breach("max_drawdown", f"NAV ${nav:,.2f} is {1 - nav / hwm:.1%} below its high-water mark "
                                        f"${hwm:,.2f}, over the {risk.max_drawdown:.1%} limit",
                        nav / hwm - 1, -risk.max_drawdown)
    elif previous > 0 and under(nav / previous - 1, -risk.max_daily_loss):
        breach = Breach("max_daily_loss", f"NAV fell {1 - nav / previous:.1%} in a session (${previous:,.2f} -> "
                                          f"${nav:,.2f}), over the {risk.max_daily_loss:.1%} limit",
                        nav / previous - 1, -risk.max_daily_loss)
    return msgspec.structs.replace(state, high_water_mark=hwm, last_close_nav=nav), breach


def after_mark(state: GuardState, risk: RiskSpec, nav: float) -> tuple[GuardState, tuple[str, str] | None]:
    """`mark_breach` as (state, (rule, reason)) for the live loop."""
    state, breach = mark_breach(state, risk, nav)
    return state, (breach.rule, breach.reason) if breach else None


def after_reject(state: GuardState, risk: RiskSpec, at: datetime) -> tuple[GuardState, tuple[str, str] | None]:
    window_start = at - timedelta(minutes=risk.reject_window_minutes)
    recent = [t for t in state.reject_times if t >= window_start] + [at]
    new = msgspec.structs.replace(state, reject_times=recent)
    if len(recent) >= risk.max_rejects:
        return new, ("max_rejects", f"{len(recent)} rejected orders or broker errors within "
                                    f"{risk.reject_window_minutes} min (limit {risk.max_rejects})")
    return new, None


def after_marks(state: GuardState, risk: RiskSpec, navs: Sequence[float]) -> tuple[GuardState, tuple[int, Breach] | None]:
    """`mark_breach` over a run of closing marks at once (the backtest's fast path). Returns
    the state after the marks up to and including the first breach, and (index, breach) of
    that breach. A plain loop: spans are a month of sessions, too short for numpy to pay."""
    hwm, previous = state.high_water_mark, state.last_close_nav
    # The same floors as `under` applies in `mark_breach` (both limits are fractions below 1).
    drawdown_floor = -risk.max_drawdown - EPSILON
    loss_floor = -risk.max_daily_loss - EPSILON
    for i, nav in enumerate(navs):
        peak = nav if nav > hwm else hwm
        if (peak > 0 and nav / peak - 1 < drawdown_floor) or (previous > 0 and nav / previous - 1 < loss_floor):
            before = msgspec.structs.replace(state, high_water_mark=hwm, last_close_nav=previous)
            after, breach = mark_breach(before, risk, float(nav))
            assert breach is not None
            return after, (i, breach)
        hwm, previous = peak, nav
    return msgspec.structs.replace(state, high_water_mark=float(hwm), last_close_nav=float(previous)), None
