"""Signal books: entries into position slots and exits per position. Pure.

`decide_book` runs one signal-book model at row t (the last closed bar): it checks every open
position's exits on row t's close, enters the best-scored candidates into free slots, and may
displace the weakest holding. Orders fill at the next session's open, in every mode (a gap
through a stop fills at that open, not at the stop level). The per-position state is an
immutable, msgspec-serialisable `BookState` the caller passes in and keeps from the result,
so the runtime can journal it and restore it at start-up. docs/strategies.md ("Signal books")
states the semantics the tests pin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from datetime import date

import msgspec
import numpy as np

from botctl.records import Severity, SubmitOrder
from botctl.spec import steps as st
from botctl.spec.plan import ModelPlan
from botctl.strategy.identity import IdentityCache
from botctl.strategy.signals import Signals

QTY_EPSILON = 1e-9
# Exits that close the whole position, in precedence order: the pessimistic first. When several
# fire on one bar the first names the exit (the note lists them all); a take-profit rung only
# acts when none of these fired.
FULL_EXITS = ("stop_loss", "trailing_stop", "regime", "signal_reversed", "score_below", "time")
STOP_RULES = frozenset({"stop_loss", "trailing_stop"})


class OpenPosition(msgspec.Struct, frozen=True, kw_only=True):
    """One position a signal book holds, and what its exits need to know."""

    symbol: str
    qty: float  # shares held now (after any scale-outs)
    entered_qty: float  # shares bought at entry: take-profit rungs are fractions of it
    decided_on: date  # the bar the entry was decided on; it filled at the next session's open
    entry_price: float | None = None  # that open; None until the entry session's bar is known
    high_close: float | None = None  # highest close since entry
    stage: int = 0  # take-profit rungs already sold
    entry_score: float
    score: float | None = None  # the score at the last decision
    stop_level: float | None = None  # the higher of the stop loss and the trailing stop at the last decision
    waiting_since: date | None = None  # its exits wait for a price: the first session without a close


class ExitMark(msgspec.Struct, frozen=True):
    """The last exit of a symbol: when and by which rule (what cooldowns read)."""

    on: date
    rule: str


class PendingSale(msgspec.Struct, frozen=True, kw_only=True):
    """A sale the book decided and has not yet seen in the account's holdings: until the
    account holds `qty` fewer shares than `held_before`, it is sent again (a blocked, canceled
    or unfilled exit is retried, never forgotten)."""

    qty: float
    rule: str
    held_before: float  # the account's shares of the symbol when the sale was decided
    decided_on: date
    waiting_since: date | None = None  # it waits for a price to be sent again: the first session without a close


class ModelBook(msgspec.Struct, frozen=True, kw_only=True):
    positions: dict[str, OpenPosition] = {}
    selling: dict[str, PendingSale] = {}
    exits: dict[str, ExitMark] = {}
    displaced_on: date | None = None  # the last displacement (its cooldown)
    as_of: date | None = None  # the bar of the last decision


class BookState(msgspec.Struct, frozen=True, kw_only=True):
    """Every signal book's state in one account, by model name."""

    models: dict[str, ModelBook] = {}

    def held(self) -> dict[str, float]:
        """Shares each symbol's signal books hold, over all models."""
        out: dict[str, float] = {}
        for book in self.models.values():
            for symbol, position in book.positions.items():
                out[symbol] = out.get(symbol, 0.0) + position.qty
            for symbol, sale in book.selling.items():  # still the book's until the sale shows
                out[symbol] = out.get(symbol, 0.0) + sale.qty
        return out


class BookNote(msgspec.Struct, frozen=True, kw_only=True):
    """What a signal book did or could not do, for the runtime to journal as an Event: the
    rule and the numbers it compared."""

    model: str
    symbol: str
    type: str  # book.exit, book.entry, book.displace, book.exit_waiting, book.entry_unfilled, ...
    rule: str
    severity: Severity = "INFO"
    message: str
    numbers: dict[str, float] = {}


class BookOutcome(msgspec.Struct, frozen=True):
    orders: list[SubmitOrder]
    book: ModelBook
    notes: list[BookNote]


def encode_state(state: BookState) -> bytes:
    return msgspec.json.encode(state)


def decode_state(data: bytes | str) -> BookState:
    return msgspec.json.decode(data, type=BookState)


def encode_books(state: BookState) -> dict[str, bytes]:
    """One JSON document per model: what Store.put_position_states keeps."""
    return {name: msgspec.json.encode(book) for name, book in state.models.items()}


def decode_books(documents: Mapping[str, bytes]) -> BookState:
    """The BookState from Store.position_states' documents (a model's bad document is an
    error naming it: a book must not restart from a state it cannot read)."""
    models = {}
    for name, data in documents.items():
        try:
            models[name] = msgspec.json.decode(data, type=ModelBook)
        except msgspec.DecodeError as exc:
            raise ValueError(f"the stored position state of model {name!r} is unreadable: {exc}") from exc
    return BookState(models=models)


class _Rules:
    """A book model's steps, found once."""

    def __init__(self, steps: tuple[st.Step, ...]) -> None:
        def first(kind: type[st.Step]) -> st.Step | None:
            return next((s for s in steps if isinstance(s, kind)), None)

        select = first(st.SelectTopScores)
        self.select = select if isinstance(select, st.SelectTopScores) else st.SelectTopScores()
        self.sizing = next((s for s in steps if isinstance(s, st.SIZING_STEPS)), st.WeighSlots())
        self.gross = min((s.gross for s in steps if isinstance(s, st.LimitLeverage)), default=1.0)
        self.regimes = [s for s in steps if isinstance(s, st.WhenRegime)]
        self.cooldowns = [s for s in steps if isinstance(s, st.WhenCooldown)]
        self.stop = first(st.ExitStopLoss)
        self.trail = first(st.ExitTrailingStop)
        self.time = first(st.ExitTime)
        self.ladder = first(st.ExitTakeProfit)
        self.below = first(st.ExitScoreBelow)
        self.reverses = first(st.ExitSignalReverses) is not None
        self.exit_regime = first(st.ExitRegime) is not None
        self.displace = first(st.DisplaceWeakest)


_RULES: IdentityCache[_Rules] = IdentityCache()


def _rules(steps: tuple[st.Step, ...]) -> _Rules:
    """A model's rules, found once per steps tuple."""
    return _RULES.get(lambda: _Rules(steps), steps)


def _sessions_since(signals: Signals, day: date, row: int) -> int:
    return row - signals.row_of(day)


def _regime_open(rules: _Rules, signals: Signals, row: int) -> tuple[bool, str]:
    for gate in rules.regimes:
        above = signals.regime_above[(gate.benchmark, gate.sma_days)][row]
        if math.isnan(above):
            return False, f"{gate.benchmark} has under {gate.sma_days} sessions of history"
        if bool(above) != (gate.is_ == "above"):
            return False, f"{gate.benchmark} is {'above' if above else 'below'} its {gate.sma_days}-day average"
    return True, ""


def _full_exits(rules: _Rules, p: OpenPosition, close: float, score: float, held: int,
                regime_closed: str) -> list[tuple[str, str, dict[str, float]]]:
    """Every full exit that fires on this close, in precedence order."""
    assert p.entry_price is not None and p.high_close is not None
    gain = close / p.entry_price - 1
    fired: list[tuple[str, str, dict[str, float]]] = []
    if isinstance(rules.stop, st.ExitStopLoss):
        level = p.entry_price * (1 - rules.stop.pct)
        if close <= level:
            fired.append(("stop_loss", f"close {close:.4g} <= stop {level:.4g} (entry {p.entry_price:.4g} - {rules.stop.pct:.2%})",
                          {"close": close, "level": level, "entry_price": p.entry_price}))
    if isinstance(rules.trail, st.ExitTrailingStop):
        level = p.high_close * (1 - rules.trail.pct)
        if close <= level:
            fired.append(("trailing_stop", f"close {close:.4g} <= trailing stop {level:.4g} "
                                           f"(highest close {p.high_close:.4g} - {rules.trail.pct:.2%})",
                          {"close": close, "level": level, "high_close": p.high_close}))
    if regime_closed and rules.exit_regime:
        fired.append(("regime", f"regime gate closed: {regime_closed}", {"close": close}))
    if not math.isnan(score):
        if rules.reverses and p.entry_score != 0 and score * p.entry_score < 0:
            fired.append(("signal_reversed", f"score {score:.4g} has the opposite sign of the entry score {p.entry_score:.4g}",
                          {"score": score, "entry_score": p.entry_score}))
        if isinstance(rules.below, st.ExitScoreBelow) and score < rules.below.level:
            fired.append(("score_below", f"score {score:.4g} < {rules.below.level:g}",
                          {"score": score, "level": rules.below.level}))
    if isinstance(rules.time, st.ExitTime) and held >= rules.time.sessions:
        band = rules.time.band
        if band is None:
            fired.append(("time", f"held {held} sessions >= {rules.time.sessions}",
                          {"sessions_held": float(held), "limit": float(rules.time.sessions)}))
        elif abs(gain) <= band:
            fired.append(("stale", f"held {held} sessions >= {rules.time.sessions} with a gain of {gain:+.2%} "
                                   f"within +/-{band:.2%}",
                          {"sessions_held": float(held), "limit": float(rules.time.sessions), "gain": gain, "band": band}))
    return fired


def _no_close_since(signals: Signals, symbol: str, row: int) -> date:
    """The first session of the run of missing closes of `symbol` that ends at `row`."""
    closes = signals.bars.close[: row + 1, signals.columns[symbol]]
    seen = np.flatnonzero(~np.isnan(closes))
    return signals.bars.dates[int(seen[-1]) + 1 if seen.size else 0]


def _stop_level(rules: _Rules, entry: float | None, high: float) -> float | None:
    """The close at or below which a stop fires next (what status shows)."""
    levels = []
    if isinstance(rules.stop, st.ExitStopLoss) and entry is not None:
        levels.append(entry * (1 - rules.stop.pct))
    if isinstance(rules.trail, st.ExitTrailingStop):
        levels.append(high * (1 - rules.trail.pct))
    return max(levels) if levels else None


def _rounded(qty: float, fractional: bool) -> float:
    return qty if fractional else float(math.floor(qty + 1e-9))


def decide_book(
    model: ModelPlan,
    signals: Signals,
    row: int,
    book: ModelBook | None,
    account_qty: Mapping[str, float],
    prices: Mapping[str, float],
    nav: float,
    *,
    account: str,
    fractional: bool = True,
    min_trade_value: float = 0.0,
) -> BookOutcome:
    """One decision of signal book `model` on bar `row` (the last closed bar); see the module doc."""
    rules = _rules(model.steps)
    book = book or ModelBook()
    bars = signals.bars
    today = bars.dates[row]
    score_row = signals.score(model.steps)[row]
    close_row = bars.close[row]
    notes: list[BookNote] = []
    orders: list[SubmitOrder] = []
    exits = dict(book.exits)
    positions: dict[str, OpenPosition] = {}

    def note(symbol: str, kind: str, rule: str, message: str, numbers: dict[str, float] | None = None,
             severity: Severity = "INFO") -> None:
        notes.append(BookNote(model=model.name, symbol=symbol, type=kind, rule=rule, severity=severity,
                              message=message, numbers=numbers or {}))

    selling: dict[str, PendingSale] = {}

    def sell(symbol: str, qty: float, reason: str, price: float) -> None:
        orders.append(SubmitOrder(account=account, symbol=symbol, side="sell", qty=qty, ref_price=price, reason=reason))
        held_now = account_qty.get(symbol, 0.0)
        before = selling.get(symbol)
        selling[symbol] = PendingSale(qty=qty + (before.qty if before else 0.0), rule=before.rule if before else reason,
                                      held_before=held_now, decided_on=today)

    for symbol, pending in sorted(book.selling.items()):
        left = account_qty.get(symbol, 0.0) - (pending.held_before - pending.qty)
        if left <= QTY_EPSILON:
            continue  # sold
        price = float(close_row[signals.columns[symbol]])
        if math.isnan(price):
            since = pending.waiting_since or _no_close_since(signals, symbol, row)
            selling[symbol] = msgspec.structs.replace(pending, waiting_since=since)
            note(symbol, "book.exit_waiting", pending.rule, f"{symbol}: the {pending.rule} sale decided on "
                 f"{pending.decided_on} is not done and {symbol} has no close on {today}: it waits for a price "
                 f"(since {since})", {"qty": left}, severity="WARN")
            continue
        note(symbol, "book.exit_retried", pending.rule, f"{symbol}: the {pending.rule} sale decided on {pending.decided_on} "
             f"did not happen ({left:g} shares still held): sent again", {"qty": left}, severity="WARN")
        sell(symbol, min(left, account_qty.get(symbol, 0.0)), pending.rule, price)  # a new pending sale from here

    gate_open, gate_why = _regime_open(rules, signals, row)
    regime_closed = "" if gate_open else gate_why
    for symbol, stored in sorted(book.positions.items()):
        col = signals.columns[symbol]
        settled = _settle_entry(stored, signals, row, account_qty.get(symbol, 0.0))
        if settled is None:
            note(symbol, "book.entry_unfilled", "entry", f"{symbol}: the entry decided on {book.positions[symbol].decided_on} "
                 "is not held (not filled); the slot is free again", severity="WARN")
            continue
        p = settled
        if p.entry_price is None:  # the entry's session has not closed yet: nothing to check
            positions[symbol] = p
            continue
        close = float(close_row[col])
        score = float(score_row[col])
        if math.isnan(close):
            since = p.waiting_since or _no_close_since(signals, symbol, row)
            note(symbol, "book.exit_waiting", "no_price", f"{symbol} has no close on {today}: its exits are not checked "
                 f"and nothing is sold blind; they wait for a price (since {since})", {"qty": p.qty}, severity="WARN")
            positions[symbol] = msgspec.structs.replace(p, waiting_since=since)
            continue
        high = close if p.high_close is None else max(p.high_close, close)
        p = msgspec.structs.replace(p, high_close=high, score=None if math.isnan(score) else score,
                                    stop_level=_stop_level(rules, p.entry_price, high), waiting_since=None)
        held = row - signals.row_of(p.decided_on)  # closes seen since the entry's open
        fired = _full_exits(rules, p, close, score, held, regime_closed)
        if fired:
            rule, message, numbers = fired[0]
            also = [r for r, _, _ in fired[1:]]
            sell(symbol, p.qty, rule, close)
            exits[symbol] = ExitMark(today, rule)
            note(symbol, "book.exit", rule, f"{symbol} exit ({rule}): {message}" + (f"; also fired: {', '.join(also)}" if also else ""),
                 {**numbers, "qty": p.qty})
            continue
        p = _take_profit(rules, p, close, fractional, note, sell)
        if p.qty <= QTY_EPSILON:
            exits[symbol] = ExitMark(today, "take_profit")
            continue
        positions[symbol] = p

    free = rules.select.max_positions - len(positions)
    # one more than the free slots: the best left over is the displacement's candidate
    # a symbol still being sold is not bought back before its sale shows in the account
    busy = set(positions) | set(selling)
    entries = _entries(model, rules, signals, row, busy, exits, score_row, close_row, gate_open, max(free, 0) + 1)
    chosen = entries[:max(free, 0)]
    rest = entries[len(chosen):]
    displaced_on = book.displaced_on
    if free <= len(chosen) and rest and isinstance(rules.displace, st.DisplaceWeakest):
        swap = _displace(rules.displace, signals, row, positions, rest[0], close_row, displaced_on)
        if swap is not None:
            weak, numbers = swap
            p = positions.pop(weak)
            price = float(close_row[signals.columns[weak]])
            sell(weak, p.qty, "displaced", price)
            exits[weak] = ExitMark(today, "displaced")
            displaced_on = today
            note(weak, "book.displace", "displaced",
                 f"{weak} (score {numbers['weak_score']:.4g}) displaced by {rest[0][1]} (score {rest[0][0]:.4g}): "
                 f"margin {numbers['advantage']:.4g} > {rules.displace.margin:g}", numbers)
            chosen.append(rest[0])
    budget_value = model.budget * nav
    room = budget_value * rules.gross - sum(p.qty * float(prices.get(s, close_row[signals.columns[s]]))
                                            for s, p in positions.items() if p.qty > 0)
    for score, symbol in chosen:
        price = float(close_row[signals.columns[symbol]])
        value = min(_entry_value(rules, budget_value, score), room)
        qty = _rounded(value / price, fractional) if value > 0 else 0.0
        if qty <= QTY_EPSILON or qty * price < min_trade_value:
            note(symbol, "book.entry_skipped", "size", f"{symbol} scores {score:.4g} but its slot buys under "
                 f"{max(min_trade_value, price if not fractional else 0.0):.2f} of it (room {max(room, 0.0):.2f})",
                 {"score": score, "value": value, "price": price})
            continue
        room -= qty * price
        orders.append(SubmitOrder(account=account, symbol=symbol, side="buy", qty=qty, ref_price=price, reason="entry"))
        positions[symbol] = OpenPosition(symbol=symbol, qty=qty, entered_qty=qty, decided_on=today, entry_score=score, score=score)
        note(symbol, "book.entry", "entry", f"{symbol} entry: score {score:.4g} >= {rules.select.min_score:g}, "
             f"{qty:g} shares at about {price:.4g}", {"score": score, "qty": qty, "ref_price": price})
    keep = max([c.sessions for c in rules.cooldowns] + [0])
    exits = {s: m for s, m in exits.items() if _sessions_since(signals, m.on, row) <= keep}
    return BookOutcome(orders, ModelBook(positions=positions, selling=selling, exits=exits, displaced_on=displaced_on,
                                         as_of=today), notes)


def _settle_entry(p: OpenPosition, signals: Signals, row: int, held: float) -> OpenPosition | None:
    """Learn an entry's price once its session's bar exists, and never count more shares than
    the account holds (an entry that did not fill, or filled in part). None: not held at all."""
    bars = signals.bars
    if p.entry_price is None:
        fill_row = signals.row_of(p.decided_on) + 1
        if fill_row > row:
            return p
        price = float(bars.open[fill_row, signals.columns[p.symbol]])
        if math.isnan(price) or held <= QTY_EPSILON:
            return None
        p = msgspec.structs.replace(p, entry_price=price)
    if held < p.qty - QTY_EPSILON:
        if held <= QTY_EPSILON:
            return None
        p = msgspec.structs.replace(p, qty=held, entered_qty=min(p.entered_qty, held) if p.stage == 0 else p.entered_qty)
    return p


def _take_profit(rules: _Rules, p: OpenPosition, close: float, fractional: bool,
                 note: Callable[..., None], sell: Callable[[str, float, str, float], None]) -> OpenPosition:
    """Sell the rungs of the ladder this close reaches (several at once on a jump). Rungs sell
    fractions of the entered quantity, rounded down to whole shares without fractional
    trading; a ladder that adds up to 100% sells what is left on its last rung."""
    if not isinstance(rules.ladder, st.ExitTakeProfit) or p.entry_price is None:
        return p
    ladder = rules.ladder.ladder
    gain = close / p.entry_price - 1
    stage = p.stage
    while stage < len(ladder) and gain >= ladder[stage].at:
        stage += 1
    if stage == p.stage:
        return p
    sold = p.entered_qty - p.qty
    share = sum(r.sell for r in ladder[:stage])
    if share >= 1 - 1e-9:
        qty = p.qty
    else:
        qty = max(0.0, min(p.qty, _rounded(p.entered_qty * share, fractional) - sold))
    rungs = ", ".join(f"+{r.at:.2%}" for r in ladder[p.stage:stage])
    numbers = {"close": close, "entry_price": p.entry_price, "gain": gain, "stage": float(stage), "qty": qty}
    if qty <= QTY_EPSILON:
        note(p.symbol, "book.take_profit", "take_profit", f"{p.symbol} reached rung(s) {rungs} (gain {gain:+.2%}); "
             "the share to sell rounds to 0 whole shares, nothing sold", numbers)
    else:
        sell(p.symbol, qty, "take_profit", close)
        note(p.symbol, "book.exit", "take_profit", f"{p.symbol} take profit at rung(s) {rungs}: gain {gain:+.2%}, "
             f"sold {qty:g} of {p.qty:g}", numbers)
    return msgspec.structs.replace(p, qty=p.qty - qty, stage=stage)


def _entries(model: ModelPlan, rules: _Rules, signals: Signals, row: int, busy: Collection[str],
             exits: Mapping[str, ExitMark], score_row: np.ndarray, close_row: np.ndarray,
             gate_open: bool, wanted: int) -> list[tuple[float, str]]:
    """The best `wanted` candidates as (score, symbol), best first; ties broken by symbol name.
    Vectorised over the universe: a book of 500 symbols decides every session."""
    if not gate_open or wanted <= 0:
        return []
    cols, names = _universe(model, signals)
    scores, closes = score_row[cols], close_row[cols]
    with np.errstate(invalid="ignore"):
        usable = np.flatnonzero(np.isfinite(scores) & (scores >= rules.select.min_score) & (closes > 0))
    order = usable[np.lexsort((names[usable], -scores[usable]))]
    today = signals.bars.dates[row]
    out: list[tuple[float, str]] = []
    for i in order:
        symbol = model.universe[i]
        mark = exits.get(symbol)
        if symbol in busy or (mark is not None and (mark.on == today or _cooling(rules, signals, row, mark))):
            continue
        out.append((float(scores[i]), symbol))
        if len(out) == wanted:
            break
    return out


_UNIVERSES: IdentityCache[tuple[np.ndarray, np.ndarray]] = IdentityCache()


def _universe(model: ModelPlan, signals: Signals) -> tuple[np.ndarray, np.ndarray]:
    """The universe's columns in the signal matrices and each symbol's rank by name (the
    tie-break), computed once per universe and column layout."""
    def compute() -> tuple[np.ndarray, np.ndarray]:
        cols = np.array([signals.columns[s] for s in model.universe], dtype=np.intp)
        ranks = np.empty(len(model.universe), dtype=np.intp)
        ranks[np.argsort(np.array(model.universe, dtype=object), kind="stable")] = np.arange(len(model.universe))
        return cols, ranks

    return _UNIVERSES.get(compute, model.universe, signals.bars.symbols)


def _cooling(rules: _Rules, signals: Signals, row: int, mark: ExitMark) -> bool:
    since = _sessions_since(signals, mark.on, row)
    return any(since <= c.sessions and (c.after == "any" or mark.rule in STOP_RULES) for c in rules.cooldowns)


def _displace(rule: st.DisplaceWeakest, signals: Signals, row: int, positions: Mapping[str, OpenPosition],
              best: tuple[float, str], close_row: np.ndarray, displaced_on: date | None) -> tuple[str, dict[str, float]] | None:
    """The weakest holding `best` may displace, if any (see DisplaceWeakest)."""
    if displaced_on is not None and _sessions_since(signals, displaced_on, row) <= rule.cooldown_sessions:
        return None
    eligible = []
    for symbol, p in positions.items():
        close = float(close_row[signals.columns[symbol]])
        if p.entry_price is None or p.score is None or math.isnan(close):
            continue
        gain = close / p.entry_price - 1
        if row - signals.row_of(p.decided_on) >= rule.min_sessions and abs(gain) <= rule.pnl_band:
            eligible.append((p.score, symbol, gain))
    if not eligible:
        return None
    weak_score, weak, gain = min(eligible, key=lambda e: (e[0], e[1]))
    advantage = best[0] - weak_score
    if advantage <= rule.margin:
        return None
    return weak, {"weak_score": weak_score, "candidate_score": best[0], "advantage": advantage, "gain": gain}


def _entry_value(rules: _Rules, budget_value: float, score: float) -> float:
    sizing = rules.sizing
    if isinstance(sizing, st.WeighFraction):
        return budget_value * sizing.fraction
    if isinstance(sizing, st.WeighByScore):
        return budget_value * min(sizing.max, max(0.0, sizing.per_point * score))
    return budget_value / rules.select.max_positions
