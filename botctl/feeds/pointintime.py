"""External signals as score matrices a strategy can read, without look-ahead.

The timing rule (docs/feeds.md): a signal is usable at a decision taken strictly after

- `max(ts_event, ts_received)` for signals the bot journaled as they arrived ("recorded":
  paper and live runs, and backtests or replays of a journal source), or
- `ts_event + latency` of its kind for signals read from a file whose receipt was never
  recorded ("declared": backtests of a file source),

and until its `expires_at` (a signal expired at or before the decision is not used).

Several signals of one kind for one symbol: the LATEST usable one wins (latest by the time it
became usable, then by ts_event, then by id), and if that one has expired the cell is empty:
a newer signal replaces the sender's view, it does not add to it. A signal's `direction`
fixes its sign (long: +|score|, short: -|score|); without one the score is taken as sent.

Rows are decision times, one per row of the caller's matrices. For `strategy.bars.Bars` the
engine decides in session r+1 on bar r, so row r's decision time is the NEXT session's
rebalance time (botctl.feeds.timing.decision_times builds them); any row's value depends only
on signals usable before its decision time. Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from botctl.records import Signal
from botctl.spec.feeds import KindSpec

Mode = Literal["recorded", "declared"]


def usable_at(signal: Signal, mode: Mode, latency: timedelta) -> datetime:
    """When `signal` may first be used (strictly after this instant)."""
    if mode == "recorded":
        return max(signal.ts_event, signal.ts_received)
    return signal.ts_event + latency


def signed_score(signal: Signal) -> float:
    if signal.direction == "long":
        return abs(signal.score)
    if signal.direction == "short":
        return -abs(signal.score)
    return signal.score


def external_scores(
    signals: Sequence[Signal],
    decision_times: Sequence[datetime],
    symbols: Sequence[str],
    kinds: Mapping[str, KindSpec],
    *,
    mode: Mode | Mapping[str, Mode] = "declared",
    latency: timedelta | None = None,
    missing: Mapping[str, datetime] | None = None,
) -> dict[str, np.ndarray]:
    """Per kind of `kinds`, a float64 matrix [decision, symbol] of the score usable at each
    decision time (NaN where none is). `mode` is one rule for all signals or one per source
    (a source missing from the mapping is "declared"); `latency` replaces every kind's
    declared latency when given. Signals of other kinds or symbols are ignored.

    `missing` maps a source to the decision time from which its scores count as missing (a
    stale feed): at and after it, a cell whose latest usable signal is that source's is NaN
    (no entry on it, and no exit on a score that merely went quiet), not an older one's."""
    column = {symbol: j for j, symbol in enumerate(symbols)}
    out = {kind: np.full((len(decision_times), len(symbols)), np.nan) for kind in kinds}
    # (kind, column) -> [(usable_at, ts_event, signal_id, signal)], sorted by the first three.
    groups: dict[tuple[str, int], list[tuple[datetime, datetime, str, Signal]]] = {}
    for signal in signals:
        j = column.get(signal.symbol)
        spec = kinds.get(signal.kind)
        if j is None or spec is None:
            continue
        rule: Mode = mode if isinstance(mode, str) else mode.get(signal.source, "declared")
        lag = latency if latency is not None else timedelta(seconds=spec.latency_seconds)
        groups.setdefault((signal.kind, j), []).append((usable_at(signal, rule, lag), signal.ts_event,
                                                        signal.signal_id, signal))
    for (kind, j), items in groups.items():
        items.sort(key=lambda item: item[:3])
        starts = [item[0] for item in items]
        matrix = out[kind]
        for row, at in enumerate(decision_times):
            latest = bisect.bisect_left(starts, at) - 1  # the last one usable strictly before `at`
            if latest < 0:
                continue
            signal = items[latest][3]
            gone = missing.get(signal.source) if missing else None
            if gone is not None and at >= gone:
                continue
            if signal.expires_at is None or signal.expires_at > at:
                matrix[row, j] = signed_score(signal)
    return out


def combine(
    scores: Mapping[str, np.ndarray],
    kinds: Mapping[str, KindSpec],
    *,
    required: Collection[str] = (),
    optional: Collection[str] = (),
) -> np.ndarray:
    """One score per cell: sum of weight * score over the `required` and `optional` kinds.
    A cell missing a required kind is NaN (no score, so no entry); a missing optional kind
    adds nothing; a cell with none of its kinds present is NaN. Raises KeyError for a kind
    that `scores` or `kinds` lacks (the config check names it first)."""
    names = [*required, *[k for k in optional if k not in required]]
    if not names:
        raise ValueError("combine needs at least one kind")
    shape = scores[names[0]].shape
    total = np.zeros(shape)
    present = np.zeros(shape, dtype=bool)
    blocked = np.zeros(shape, dtype=bool)
    for name in names:
        matrix = scores[name]
        have = ~np.isnan(matrix)
        total += np.where(have, matrix * kinds[name].weight, 0.0)
        present |= have
        if name in required:
            blocked |= ~have
    return np.where(present & ~blocked, total, np.nan)
