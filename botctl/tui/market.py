"""What the dashboard needs besides the journal: the exchange calendar (market open or closed,
next rebalance) and the bars (benchmark curve, each model's regime gate and momentum ranks).

Everything here runs in the refresh worker, off the UI thread. Bars are read once and kept;
signals are kept per account and recomputed only when the data file changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import msgspec

from botctl.runtime.session_times import NEW_YORK

DEFAULT_LOOKBACK = 126  # the ranking shown for a model that ranks by nothing


def ny_date(ts: datetime) -> date:
    return ts.astimezone(NEW_YORK).date()


@dataclass(frozen=True)
class MarketClock:
    is_open: bool
    next_change: datetime | None  # the close when open, else the next open

    def describe(self, now: datetime) -> str:
        if self.next_change is None:
            return "market open" if self.is_open else "market closed"
        left = _span(self.next_change - now)
        return f"market open, closes in {left}" if self.is_open else f"market closed, opens in {left}"


def _span(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}d {hours}h" if days else f"{hours}h {mins:02d}m"


@dataclass(frozen=True)
class ModelState:
    name: str
    budget: float
    universe: tuple[str, ...]
    state: str  # active | gated | empty | unknown
    reason: str
    next_rebalance: datetime | None


@dataclass(frozen=True)
class Ranking:
    lookback: int
    rows: list[tuple[str, float | None]]  # (symbol, momentum), best first, unknown last
    as_of: date | None = None  # the bar it was read at


class Market:
    """Calendar and bars for one data source, cached across refreshes."""

    def __init__(self, data: Path | None) -> None:
        self.data = data
        self._frame = None
        self._frame_key: object = None
        self._signals: dict[tuple, object] = {}
        self._sessions: dict[date, list] = {}
        self._bars_end_key: object = None
        self._bars_end: date | None = None
        self.problem: str | None = None

    # --- calendar ------------------------------------------------------------------------

    def sessions_around(self, today: date) -> list:
        """XNYS sessions from ~5 months before `today` to ~2 months after (cached per day)."""
        if today not in self._sessions:
            from botctl.adapters.calendar import sessions

            try:
                self._sessions = {today: sessions(today - timedelta(days=150), today + timedelta(days=60))}
            except Exception as exc:  # a calendar that cannot answer leaves the times blank
                self.problem = f"calendar: {exc}"
                self._sessions = {today: []}
        return self._sessions[today]

    def clock(self, now: datetime) -> MarketClock | None:
        sessions = self.sessions_around(ny_date(now))
        for s in sessions:
            if s.open <= now < s.close:
                return MarketClock(True, s.close)
            if s.open > now:
                return MarketClock(False, s.open)
        return None

    def close_of(self, day: date) -> datetime:
        """The session's close on `day` from the calendar (16:00 New York when it has none)."""
        return next((s.close for s in self.sessions_around(day) if s.day == day), None) or _close(day)

    def next_rebalance(self, schedule, now: datetime) -> datetime | None:
        from botctl.strategy.schedule import rebalance_sessions

        sessions = self.sessions_around(ny_date(now))
        by_day = {s.day: s for s in sessions}
        for day in rebalance_sessions(tuple(by_day), schedule):
            at = by_day[day].open + timedelta(minutes=schedule.after_open_minutes)
            if at > now:
                return at
        return None

    # --- bars ----------------------------------------------------------------------------

    def _source_key(self) -> object:
        from botctl.adapters.file_data import bundled_data_path

        path = self.data or bundled_data_path()
        try:
            return (str(path), path.stat().st_mtime_ns)
        except OSError:
            return (str(path), None)

    def frame(self):
        key = self._source_key()
        if self._frame is None or key != self._frame_key:
            from botctl.adapters.file_data import load_bars

            self._frame_key, self._signals = key, {}
            try:
                self._frame, self.problem = load_bars(self.data), None
            except Exception as exc:  # DataError and unreadable files alike: show, do not crash
                self._frame, self.problem = None, f"market data: {str(exc).splitlines()[0]}"
        return self._frame

    def bars_end(self) -> date | None:
        """The newest bar's date in the data (None when it cannot be read)."""
        frame = self.frame()
        if frame is None or frame.is_empty():
            return None
        if self._bars_end_key != self._frame_key:
            self._bars_end_key, self._bars_end = self._frame_key, frame["date"].max()
        return self._bars_end

    def signals(self, symbols: tuple[str, ...], steps: tuple):
        """Signals over `symbols` for `steps` (cached); momentum over any lookback is read
        from them row by row."""
        frame = self.frame()
        if frame is None:
            return None
        # Steps are keyed by their encoding: a step may hold a list (a take-profit ladder), so
        # the Structs themselves are not hashable.
        key = (symbols, msgspec.json.encode(steps))
        if key not in self._signals:
            from botctl.strategy.bars import bars_from_frame
            from botctl.strategy.signals import Signals

            present = set(frame["symbol"].unique().to_list())
            usable = tuple(s for s in symbols if s in present)
            bars = bars_from_frame(frame, usable)
            try:
                self._signals[key] = Signals(bars, steps) if bars.dates else None
            except Exception:  # a step naming a symbol the data lacks: rankings only
                self._signals[key] = Signals(bars, ()) if bars.dates else None
        return self._signals[key]

    def benchmark(self, symbol: str, days: list[date]) -> list[float]:
        """The benchmark's adjusted close on each of `days` (its last close before a day the
        data lacks; NaN before its history or when the data has no such symbol)."""
        sig = self.signals((symbol,), ())
        if sig is None or not sig.bars.dates:
            return [math.nan] * len(days)
        bars = sig.bars
        out = []
        for day in days:
            row = bars.index_of(day)
            out.append(float(bars.close[row, 0]) if row >= 0 else math.nan)
        return out


def last_closed_row(bars, now: datetime, market: Market | None = None) -> int:
    """Row of the last bar closed at `now` (a bar's timestamp is its session's close: 16:00,
    or the early close the calendar gives, e.g. 13:00 on December 24)."""
    today = ny_date(now)
    row = bars.index_of(today)
    if row >= 0 and bars.dates[row] == today and now < (market.close_of(today) if market else _close(today)):
        row -= 1
    return row


def _close(day: date) -> datetime:
    from botctl.runtime.session_times import close_at

    return close_at(day)


def model_states(market: Market, account, now: datetime) -> list[ModelState]:
    """Each model's budget, universe, gate (from its steps at the last closed bar) and next
    rebalance time."""
    from botctl.strategy.evaluate import decide

    steps = tuple(step for m in account.models for step in m.steps)
    sig = market.signals(account.symbols, steps)
    out = []
    for m in account.models:
        state, reason = "unknown", market.problem or "no bars"
        if sig is not None:
            row = last_closed_row(sig.bars, now, market)
            if row >= 0 and all(s in sig.columns for s in m.symbols):
                try:
                    decision = decide(m.steps, m.universe, sig, row)
                    state, reason = decision.state, decision.reason
                except (KeyError, IndexError) as exc:
                    reason = f"cannot evaluate: {exc}"
            elif row >= 0:
                reason = "the data lacks some of its symbols"
        out.append(ModelState(m.name, m.budget, m.universe, state, reason, market.next_rebalance(m.schedule, now)))
    return out


def _lookbacks(model) -> tuple[int, ...]:
    from botctl.spec.steps import SelectMomentum, SelectThreshold

    found = [s.lookback_days for s in model.steps if isinstance(s, (SelectMomentum, SelectThreshold))]
    return tuple(dict.fromkeys(found)) or (DEFAULT_LOOKBACK,)


def rankings(market: Market, account, now: datetime) -> list[Ranking]:
    """Every universe symbol ranked by momentum over each lookback the account's models use."""
    lookbacks = tuple(dict.fromkeys(n for m in account.models for n in _lookbacks(m)))
    universe = tuple(dict.fromkeys(s for m in account.models for s in m.universe))
    sig = market.signals(universe, ())
    if sig is None:
        return []
    row = last_closed_row(sig.bars, now, market)
    out = []
    for n in lookbacks:
        values = []
        momentum = sig.momentum(n, row) if row >= 0 else None
        for symbol in universe:
            col = sig.columns.get(symbol)
            v = float(momentum[col]) if momentum is not None and col is not None else math.nan
            values.append((symbol, v if math.isfinite(v) else None))
        values.sort(key=lambda sv: (sv[1] is None, -(sv[1] or 0.0), sv[0]))
        out.append(Ranking(n, values, sig.bars.dates[row] if row >= 0 else None))
    return out
