"""Round trips: what "a trade" means in every trade statistic botctl shows. Pure.

A round trip in a symbol runs from flat to flat: it opens with the fill that takes the position
away from zero and closes with the fill that brings it back. Fills in between that add to the
position raise its cost; fills that reduce it (a partial sale) close part of it, matched
against the oldest lots first (FIFO), and their P&L belongs to the round trip. A fill that
goes through zero closes the round trip and opens the next one in the other direction with
the rest. Commissions are charged to the round trip of their fill.

Per round trip (the `backtest --json` contract):
``entry_price``  the quantity-weighted price of every entering fill;
``exit_price``   the quantity-weighted price of every closing fill, or the last price for a
                 position still open (``exit_at`` None);
``qty``          the quantity entered (positive; ``side`` says long or short);
``pnl``          realised P&L of the closing fills against their FIFO lots, plus for an open
                 position the open lots marked at the last price, less commissions;
``return``       ``pnl`` over the entered notional (``qty * entry_price``);
``sessions_held`` sessions from the entry fill's session to the exit's (or the last session);
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
    """A round trip under way: its lots and running sums."""

    __slots__ = ("direction", "lots", "entry_at", "entered_qty", "entered_value", "exit_qty", "exit_value",
                 "realised", "commission")

    def __init__(self, direction: float, at: datetime | float) -> None:
        self.direction = direction  # +1 long, -1 short
        self.lots: deque[list[float]] = deque()  # [qty > 0, price]
        self.entry_at = at
        self.entered_qty = self.entered_value = self.exit_qty = self.exit_value = 0.0
        self.realised = self.commission = 0.0

    def held(self) -> float:
        return sum(lot[0] for lot in self.lots)

    def trip(self, symbol: str, exit_at: datetime | float | None, exit_price: float | None, reason: str,
             extra_pnl: float = 0.0) -> RoundTrip:
        entry_price = self.entered_value / self.entered_qty
        pnl = self.realised + extra_pnl - self.commission
        cost = self.entered_value
        return RoundTrip(symbol=symbol, side="long" if self.direction > 0 else "short", entry_at=self.entry_at,
                         exit_at=exit_at, entry_price=entry_price, exit_price=exit_price, qty=self.entered_qty,
                         pnl=pnl, ret=pnl / cost if cost else 0.0, exit_reason=reason)


class RoundTripLedger:
    """Fills in, round trips out, one fill at a time (the dashboard feeds it incrementally)."""

    def __init__(self) -> None:
        self.open: dict[str, _Open] = {}

    def add(self, fill: TradeFill) -> list[RoundTrip]:
        """Take one fill; return the round trip it closes, if it closes one."""
        if fill.qty <= QTY_EPSILON:
            return []
        direction = 1.0 if fill.side == "buy" else -1.0
        remaining = fill.qty
        closed: list[RoundTrip] = []
        current = self.open.get(fill.symbol)
        if current is not None and current.direction != direction:  # reducing: close FIFO lots
            taken = 0.0
            while current.lots and remaining > QTY_EPSILON:
                lot = current.lots[0]
                take = min(lot[0], remaining)
                current.realised += (fill.price - lot[1]) * take * current.direction
                lot[0] -= take
                remaining -= take
                taken += take
                if lot[0] <= QTY_EPSILON:
                    current.lots.popleft()
            current.exit_qty += taken
            current.exit_value += taken * fill.price
            current.commission += fill.commission * (taken / fill.qty)
            if not current.lots:
                closed.append(current.trip(fill.symbol, fill.at, current.exit_value / current.exit_qty, fill.reason))
                del self.open[fill.symbol]
                current = None
        if remaining > QTY_EPSILON:  # entering: from flat, adding, or the rest of a fill through zero
            if current is None:
                current = self.open[fill.symbol] = _Open(direction, fill.at)
            current.lots.append([remaining, fill.price])
            current.entered_qty += remaining
            current.entered_value += remaining * fill.price
            current.commission += fill.commission * (remaining / fill.qty)
        return closed

    def still_open(self, prices: Mapping[str, float], reason: str = "end") -> list[RoundTrip]:
        """The round trips under way, marked at `prices` (the last known price of each symbol)."""
        out = []
        for symbol, current in sorted(self.open.items()):
            price = prices.get(symbol)
            unrealised = 0.0
            if price is not None and math.isfinite(price):
                unrealised = sum((price - lot[1]) * lot[0] * current.direction for lot in current.lots)
            else:
                price = None
            out.append(current.trip(symbol, None, price, reason, unrealised))
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
    if trip.exit_price is not None:
        prices = np.append(prices, trip.exit_price)
    prices = prices[np.isfinite(prices)]
    if not prices.size:
        return
    low, high = float(prices.min()) / trip.entry_price - 1, float(prices.max()) / trip.entry_price - 1
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
