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
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import msgspec
import numpy as np

from botctl.engine.orders import OrderBatch, running_before
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


def suspect_closes(bars: Bars, first: int, last: int, columns: Sequence[int], collar_pct: float) -> np.ndarray | None:
    """Mask [row, column] over rows first..last of the closes a NAV mark must not use (by the
    rule of `judge_bars`: not a price, or a move the market and volatility do not explain),
    or None when there are none; the mark keeps the last good price instead, so one bad close
    cannot lift the high-water mark or trip a breaker."""
    if first < 1 or not len(columns):
        return None
    closes = bars.close[first: last + 1].take(columns, axis=1)
    previous = bars.close[first - 1: last].take(columns, axis=1)
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
    """`check_batch` over a list of commands: (accepted, blocked), sells checked first."""
    if not orders:
        return [], []
    batch = OrderBatch.from_commands(orders[0].account, orders)
    accepted, blocked = check_batch(batch, risk, book, state, now)
    kept = set(accepted.tolist())
    refused = [i for i in np.argsort(batch.buy, kind="stable").tolist() if i not in kept]  # the blocks' order
    return ([orders[i] for i in accepted.tolist()],
            [msgspec.structs.replace(block, order=orders[i]) for i, block in zip(refused, blocked)])


# The rules in the order an order meets them: the first it fails names its block. The count
# limits come after the data and price checks and before the rest, so an order refused for its
# price never counts against them; the rest apply to buys only, but for no_short (sells).
RULES = ("stale_data", "price_collar", "max_orders_per_cycle", "max_orders_per_day", "cooldown", "no_short",
         "universe", "max_order_notional", "no_equity", "max_order_pct_nav", "max_weight", "max_gross_leverage",
         "buying_power")
_COUNTS = frozenset({"max_orders_per_cycle", "max_orders_per_day"})


def _over(value: np.ndarray, limit: float | np.ndarray) -> np.ndarray:
    """`over`, element-wise."""
    return value > limit + EPSILON * np.maximum(1.0, np.abs(limit))


class _Checks:
    """What the limits of one batch compare, in the order the orders are checked."""

    def __init__(self, batch: OrderBatch, risk: RiskSpec, book: Portfolio, state: GuardState, now: datetime) -> None:
        self.risk, self.book, self.account = risk, book, batch.account
        self.rows = np.argsort(batch.buy, kind="stable")  # sells first, each side in the batch's order
        rows = self.rows.tolist()
        self.symbols = symbols = [batch.symbols[i] for i in rows]
        self.reasons = [batch.reasons[i] for i in rows]
        self.buy = buy = batch.buy[self.rows]
        self.qty, self.ref = batch.qty[self.rows], batch.ref_price[self.rows]
        self.notional = self.qty * self.ref
        self.signed = np.where(buy, self.qty, -self.qty)
        self.orders_today = state.orders_today if state.day == book.today else 0
        self.data_age = (book.today - book.data_as_of).days if book.data_as_of else math.inf
        self.held = np.array([book.qty.get(s, 0.0) for s in symbols], dtype=float)
        self.price = np.array([book.prices.get(s, 0.0) for s in symbols], dtype=float)
        # Gross exposure and buying power run through the accepted orders, each moving them by
        # its own change: a cycle of n orders costs O(n), not O(n x holdings).
        self.gross0 = sum(abs(q * book.prices.get(s, 0.0)) for s, q in book.qty.items())
        self.static = self._static(risk, book, state, now)

    def _static(self, risk: RiskSpec, book: Portfolio, state: GuardState, now: datetime) -> dict[str, tuple[np.ndarray, np.ndarray | float, np.ndarray | float]]:
        """(fails, limit, value) of each rule that does not depend on the other orders."""
        buy, ref, notional, n = self.buy, self.ref, self.notional, len(self.symbols)
        nav = book.nav
        bad_price = ~np.isfinite(ref) | (ref <= 0)
        close = np.array([book.last_close.get(s) or 0.0 for s in self.symbols], dtype=float)
        self.close = close
        move = np.where(close != 0, np.abs(ref / close - 1), np.inf)
        moved = _over(move, risk.price_collar_pct)
        if book.accepted_moves:
            moved &= np.array([s not in book.accepted_moves for s in self.symbols], dtype=bool)
        since = np.full(n, np.nan)
        if risk.cooldown_minutes:
            for i, symbol in enumerate(self.symbols):
                filled = state.last_fill_at.get(symbol)
                if filled is not None:
                    since[i] = (now - filled).total_seconds() / 60
        pct = notional / nav if nav > 0 else np.full(n, np.nan)
        return {
            "stale_data": (np.full(n, self.data_age > risk.max_data_age_days), risk.max_data_age_days, self.data_age),
            "price_collar": (bad_price | moved, risk.price_collar_pct, np.where(bad_price, np.nan, move)),
            "cooldown": (since < risk.cooldown_minutes, risk.cooldown_minutes, since),
            "universe": (buy & np.array([s not in book.universe for s in self.symbols], dtype=bool), 0.0, 1.0),
            "max_order_notional": (buy & _over(notional, risk.max_order_notional), risk.max_order_notional, notional),
            "no_equity": (buy & np.full(n, nav <= 0), 0.0, nav),
            "max_order_pct_nav": (buy & _over(pct, risk.max_order_pct_nav), risk.max_order_pct_nav, pct),
        }

    def verdicts(self, accepted: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | float, np.ndarray | float]]:
        """(fails, limit, value) of every rule, each order judged as if the orders before it
        that `accepted` marks were accepted and the others blocked."""
        risk, nav, buy = self.risk, self.book.nav, self.buy
        counted = np.concatenate([[0], np.cumsum(accepted)[:-1]])
        held = running_before(self.symbols, self.held, self.signed, accepted)
        value = held * self.price
        change = np.abs((held + self.signed) * self.price) - np.abs(value)
        # A running sum started from the first value, as adding order by order would give.
        gross = np.cumsum(np.concatenate([[self.gross0], np.where(accepted, change, 0.0)]))[:-1]
        out = dict(self.static)
        out["max_orders_per_cycle"] = (counted >= risk.max_orders_per_cycle, risk.max_orders_per_cycle, counted + 1)
        today = self.orders_today + counted
        out["max_orders_per_day"] = (today >= risk.max_orders_per_day, risk.max_orders_per_day, today + 1)
        out["no_short"] = (~buy & _over(self.qty, held), held, self.qty)
        weight = (value + self.notional) / nav if nav > 0 else np.full(len(held), np.nan)
        leverage = (gross + self.notional) / nav if nav > 0 else np.full(len(held), np.nan)
        out["max_weight"] = (buy & _over(weight, risk.max_weight), risk.max_weight, weight)
        out["max_gross_leverage"] = (buy & _over(leverage, risk.max_gross_leverage), risk.max_gross_leverage, leverage)
        power = self.book.buying_power
        if power is None:
            out["buying_power"] = (np.zeros(len(held), dtype=bool), math.nan, self.notional)
        else:
            spend = np.where(accepted, np.where(buy, -self.notional, self.notional), 0.0)
            left = np.cumsum(np.concatenate([[power], spend]))[:-1]
            out["buying_power"] = (buy & _over(self.notional, left), left, self.notional)
        return out


def check_batch(batch: OrderBatch, risk: RiskSpec, book: Portfolio, state: GuardState,
                now: datetime) -> tuple[np.ndarray, list[Block]]:
    """The rows of `batch` the guard accepts, in the order checked (sells first), and a
    `Block` for each it refuses, naming the rule and the numbers compared. Every limit holds
    for the whole set: each order is judged with the orders accepted before it done.

    The orders are judged all at once, as if every order not yet refused were accepted; the
    first that fails is refused and those after it judged again. A cycle with no refusal is
    one pass of array arithmetic."""
    if not len(batch):
        return np.empty(0, dtype=np.intp), []
    with np.errstate(all="ignore"):  # a NaN or infinite price fails its rules, it warns nobody
        return _check(_Checks(batch, risk, book, state, now))


def _check(checks: _Checks) -> tuple[np.ndarray, list[Block]]:
    risk = checks.risk
    n = len(checks.symbols)
    accepted = np.ones(n, dtype=bool)
    refused: dict[int, tuple[str, float, float]] = {}
    start = 0
    while start < n:
        verdicts = checks.verdicts(accepted)
        fails = np.stack([verdicts[rule][0] for rule in RULES])
        failing = np.flatnonzero(fails[:, start:].any(axis=0))
        if not len(failing):
            break
        i = start + int(failing[0])
        rule = RULES[int(np.argmax(fails[:, i]))]
        if rule in _COUNTS:  # the count only grows: every order from here on is refused
            counts = verdicts["max_orders_per_cycle"][2]
            assert isinstance(counts, np.ndarray)
            counted = int(counts[i]) - 1
            for j in range(i, n):
                accepted[j] = False
                if fails[0, j] or fails[1, j]:  # the data and price checks come first
                    refused[j] = _numbers(verdicts, "stale_data" if fails[0, j] else "price_collar", j)
                elif counted >= risk.max_orders_per_cycle:
                    refused[j] = ("max_orders_per_cycle", float(risk.max_orders_per_cycle), float(counted + 1))
                else:
                    refused[j] = ("max_orders_per_day", float(risk.max_orders_per_day),
                                  float(checks.orders_today + counted + 1))
            break
        accepted[i] = False
        refused[i] = _numbers(verdicts, rule, i)
        start = i + 1
    blocks = [_block(checks, i, *refused[i]) for i in sorted(refused)]
    return checks.rows[accepted], blocks


def _numbers(verdicts: dict[str, tuple[np.ndarray, np.ndarray | float, np.ndarray | float]], rule: str,
             i: int) -> tuple[str, float, float]:
    """(rule, limit, value) the i-th order was refused with."""
    _, limit, value = verdicts[rule]
    return rule, float(limit[i] if isinstance(limit, np.ndarray) else limit), \
        float(value[i] if isinstance(value, np.ndarray) else value)


def _block(checks: _Checks, i: int, rule: str, limit: float, value: float) -> Block:
    """The refusal of the i-th order checked, in words."""
    risk, symbol = checks.risk, checks.symbols[i]
    ref, notional = float(checks.ref[i]), float(checks.notional[i])
    order = SubmitOrder(account=checks.account, symbol=symbol, side="buy" if checks.buy[i] else "sell",
                        qty=float(checks.qty[i]), ref_price=ref, reason=checks.reasons[i])
    if rule == "stale_data":
        message = f"last bar is {checks.data_age} days old, over {risk.max_data_age_days}"
    elif rule == "price_collar" and math.isnan(value):
        message = "no usable reference price"
    elif rule == "price_collar":
        close = float(checks.close[i])
        message = (f"{symbol} at {ref:.4f} is {value:.1%} from the last close {close if close else 'unknown'}, "
                   f"over {risk.price_collar_pct:.1%}")
    elif rule == "max_orders_per_cycle":
        message = f"already {value - 1:.0f} orders this cycle"
    elif rule == "max_orders_per_day":
        message = f"already {value - 1:.0f} orders today"
    elif rule == "cooldown":
        message = f"{symbol} filled {value:.0f} min ago, cooldown {risk.cooldown_minutes} min"
    elif rule == "no_short":
        message = f"sell of {value:g} {symbol} exceeds the {limit:g} held"
    elif rule == "universe":
        message = f"{symbol} is not in the plan's universes"
    elif rule == "max_order_notional":
        message = f"order of ${notional:,.2f} over ${risk.max_order_notional:,.2f}"
    elif rule == "no_equity":
        rule, message = "buying_power", "no equity to buy with"
    elif rule == "max_order_pct_nav":
        message = f"order is {value:.1%} of NAV, over {risk.max_order_pct_nav:.1%}"
    elif rule == "max_weight":
        message = f"{symbol} would be {value:.1%} of NAV, over {risk.max_weight:.1%}"
    elif rule == "max_gross_leverage":
        message = f"gross leverage would be {value:.2f}x, over {risk.max_gross_leverage:.2f}x"
    else:
        message = f"order of ${notional:,.2f} exceeds the ${max(limit, 0):,.2f} of buying power left"
    return Block(rule=rule, message=message, order=order, limit=limit, value=value)


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
