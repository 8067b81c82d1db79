"""Round trips: what "a trade" means in every trade statistic botctl shows. Pure.

A position in a symbol opens with the fill that takes it away from zero. Fills that add to it
are lots; every fill that reduces it closes part of it, matched against the oldest lots first
(FIFO), and that closed part is one round trip: a scale-out or a trim is its own entry, and the
fill that brings the position back to zero closes the last part. A fill that goes through zero
closes what was held and opens a position in the other direction with the rest. Commissions
are charged to the part they belong to (an entering fill's pro rata to the shares closed).

Per round trip (the `backtest --json` contract):
``entry_at``     the fill that opened the position (the same for every part of it);
``entry_price``  the quantity-weighted price of the FIFO lots the part closed;
``exit_price``   the closing fill's price, or the last price for what is still held
                 (``exit_at`` None: one entry per symbol, its remaining lots);
``qty``          the quantity closed (positive; ``side`` says long or short);
``pnl``          realised P&L of the closing fill against those lots (for what is still held,
                 the lots marked at the last price), less commissions;
``return``       ``pnl`` over the lots' cost (``qty * entry_price``);
``sessions_held`` sessions from the position's first fill to this part's exit (or the last session);
``exit_reason``  the reason of the order that closed it (a rebalancer's: ``rebalance``, or
                 ``flatten`` for a kill with flatten); for one still open: ``end``, or ``halt``
                 when a circuit breaker had frozen the book;
``mae``/``mfe``  the maximum adverse / favourable excursion: the worst and best closing price
                 between entry and exit as a return on ``entry_price`` (signed for the
                 position's side; ``mae <= 0 <= mfe``), None without prices.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, cast

import msgspec
import numpy as np

# Quantities below this are float residue of a position that is flat.
QTY_EPSILON = 1e-9


class TradeFill(msgspec.Struct, frozen=True):
    symbol: str
    side: str  # "buy" or "sell"
    qty: float
    price: float
    at: datetime | float  # a time; the dashboard passes a day number (any epoch)
    reason: str = "rebalance"
    commission: float = 0.0


class RoundTrip(msgspec.Struct, kw_only=True):
    symbol: str
    side: str  # "long" or "short"
    entry_at: datetime | float
    exit_at: datetime | float | None
    entry_price: float
    exit_price: float | None
    qty: float
    pnl: float
    ret: float = msgspec.field(name="return")
    sessions_held: int | None = None
    exit_reason: str
    mae: float | None = None
    mfe: float | None = None


class _Open:
    """A position under way: its FIFO lots [qty > 0, price, entry commission per share]."""

    __slots__ = ("direction", "lots", "entry_at")

    def __init__(self, direction: float, at: datetime | float) -> None:
        self.direction = direction  # +1 long, -1 short
        self.lots: deque[list[float]] = deque()
        self.entry_at = at

    def take(self, qty: float) -> tuple[float, float, float]:
        """Remove `qty` from the oldest lots: (quantity taken, its cost, its entry commissions)."""
        taken = cost = commission = 0.0
        while self.lots and qty - taken > QTY_EPSILON:
            lot = self.lots[0]
            part = min(lot[0], qty - taken)
            taken += part
            cost += part * lot[1]
            commission += part * lot[2]
            lot[0] -= part
            if lot[0] <= QTY_EPSILON:
                self.lots.popleft()
        return taken, cost, commission

    def part(self, symbol: str, qty: float, cost: float, exit_at: datetime | float | None, exit_price: float | None,
             reason: str, pnl: float) -> RoundTrip:
        return RoundTrip(symbol=symbol, side="long" if self.direction > 0 else "short", entry_at=self.entry_at,
                         exit_at=exit_at, entry_price=cost / qty, exit_price=exit_price, qty=qty,
                         pnl=pnl, ret=pnl / cost if cost else 0.0, exit_reason=reason)


class RoundTripLedger:
    """Fills in, round trips out, one fill at a time (the dashboard feeds it incrementally)."""

    def __init__(self) -> None:
        self.open: dict[str, _Open] = {}

    def add(self, fill: TradeFill) -> list[RoundTrip]:
        """Take one fill; return the part of a position it closes, if it closes one."""
        if fill.qty <= QTY_EPSILON:
            return []
        direction = 1.0 if fill.side == "buy" else -1.0
        remaining = fill.qty
        closed: list[RoundTrip] = []
        current = self.open.get(fill.symbol)
        if current is not None and current.direction != direction:  # reducing: close FIFO lots
            taken, cost, entry_commission = current.take(remaining)
            remaining -= taken
            pnl = (fill.price * taken - cost) * current.direction - entry_commission - fill.commission * (taken / fill.qty)
            closed.append(current.part(fill.symbol, taken, cost, fill.at, fill.price, fill.reason, pnl))
            if not current.lots:
                del self.open[fill.symbol]
                current = None
        if remaining > QTY_EPSILON:  # entering: from flat, adding, or the rest of a fill through zero
            if current is None:
                current = self.open[fill.symbol] = _Open(direction, fill.at)
            current.lots.append([remaining, fill.price, fill.commission / fill.qty])
        return closed

    def still_open(self, prices: Mapping[str, float], reason: str = "end") -> list[RoundTrip]:
        """What is still held, one entry per symbol, marked at `prices` (the last known price)."""
        out = []
        for symbol, current in sorted(self.open.items()):
            qty = sum(lot[0] for lot in current.lots)
            cost = sum(lot[0] * lot[1] for lot in current.lots)
            commission = sum(lot[0] * lot[2] for lot in current.lots)
            price: float | None = prices.get(symbol)
            unrealised = 0.0
            if price is not None and math.isfinite(price):
                unrealised = (price * qty - cost) * current.direction
            else:
                price = None
            out.append(current.part(symbol, qty, cost, None, price, reason, unrealised - commission))
        return out


# closes(symbol, first, last): a symbol's closing prices for session indexes first..last
Closes = Callable[[str, int, int], Sequence[float] | np.ndarray]


def round_trips(fills: Iterable[TradeFill], *, sessions: Sequence[date] = (),
                closes: Closes | None = None,
                last_prices: Mapping[str, float] | None = None, open_reason: str = "end") -> list[RoundTrip]:
    """Every round trip of `fills` (in time order): the closed ones in the order they closed,
    then those still open at the end (marked at `last_prices`, with `open_reason`).

    `sessions` (ascending) count `sessions_held`; `closes(symbol, first, last)` gives the
    symbol's closing prices for session indexes first..last, for `mae`/`mfe`."""
    ledger = RoundTripLedger()
    trips: list[RoundTrip] = []
    for fill in fills:
        trips.extend(ledger.add(fill))
    trips.extend(ledger.still_open(last_prices or {}, open_reason))
    if sessions:
        for trip in trips:
            _excursions(trip, sessions, closes)
    return trips


def _session_index(sessions: Sequence[date], at: datetime | float | None) -> int:
    if at is None:
        return len(sessions) - 1
    # sessions are counted for fills stamped with times (the backtest's), never day numbers
    return max(0, bisect.bisect_right(sessions, cast(datetime, at).date()) - 1)


def _excursions(trip: RoundTrip, sessions: Sequence[date], closes: Closes | None) -> None:
    first, last = _session_index(sessions, trip.entry_at), _session_index(sessions, trip.exit_at)
    trip.sessions_held = last - first
    if closes is None or not trip.entry_price:
        return
    prices = np.asarray(closes(trip.symbol, first, last), dtype=np.float64)
    # the lowest and highest known price, the exit's among them (fmin/fmax pass over a NaN:
    # no copy of the window per round trip)
    low = float(np.fmin.reduce(prices)) if prices.size else math.nan
    high = float(np.fmax.reduce(prices)) if prices.size else math.nan
    if trip.exit_price is not None and math.isfinite(trip.exit_price):
        low = trip.exit_price if math.isnan(low) else min(low, trip.exit_price)
        high = trip.exit_price if math.isnan(high) else max(high, trip.exit_price)
    if math.isnan(low):
        return
    low, high = low / trip.entry_price - 1, high / trip.entry_price - 1
    worst, best = (low, high) if trip.side == "long" else (-high, -low)
    trip.mae, trip.mfe = min(0.0, worst), max(0.0, best)


def trade_stats(trips: Sequence[RoundTrip]) -> dict[str, Any]:
    """Statistics over the closed round trips (`round_trips` counts those; `open` the rest).
    `avg_win`/`avg_loss`/`expectancy` are P&L in money per round trip; `profit_factor` is the
    gross of the winners over the gross of the losers (None without a loser). `exits_by_reason`
    counts every round trip listed, open ones under their `exit_reason` (end, halt)."""
    closed = [t for t in trips if t.exit_at is not None]
    wins = [t.pnl for t in closed if t.pnl > 0]
    losses = [t.pnl for t in closed if t.pnl < 0]  # a round trip at exactly zero is neither
    gross_loss = -sum(losses)
    held = [t.sessions_held for t in closed if t.sessions_held is not None]
    reasons: dict[str, int] = {}
    for t in trips:
        reasons[t.exit_reason] = reasons.get(t.exit_reason, 0) + 1
    return {
        "round_trips": len(closed),
        "open": len(trips) - len(closed),
        "win_rate": len(wins) / len(closed) if closed else None,
        "avg_win": sum(wins) / len(wins) if wins else None,
        "avg_loss": sum(losses) / len(losses) if losses else None,
        "profit_factor": sum(wins) / gross_loss if gross_loss > 0 else None,
        "expectancy": sum(t.pnl for t in closed) / len(closed) if closed else None,
        "avg_sessions_held": sum(held) / len(held) if held else None,
        "exits_by_reason": dict(sorted(reasons.items())),
    }


def trip_record(trip: RoundTrip) -> dict[str, Any]:
    """A round trip as JSON gives it (dates as ISO strings; its fills were stamped with times)."""
    out: dict[str, Any] = msgspec.to_builtins(trip)
    out["entry_at"] = cast(datetime, trip.entry_at).date().isoformat()
    out["exit_at"] = cast(datetime, trip.exit_at).date().isoformat() if trip.exit_at else None
    return out
