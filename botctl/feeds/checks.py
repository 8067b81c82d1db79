"""Checking one external signal before it is journaled: what every source (file, poll,
webhook) applies, so a bad signal is refused the same way wherever it came from.

Pure: the caller passes the clock reading, the symbols the bot knows and the declared kinds.
A refused signal is a Rejection with a stable `reason` (the `signal.rejected` event's and the
metrics' label) and a one-line detail that never quotes more than a short, escaped excerpt.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from botctl.records import Signal, SignalDirection

# Every reason a signal is refused, wherever it is checked (here, the webhook, the poller).
REASONS: tuple[str, ...] = (
    "malformed",  # not a JSON object / not a row
    "missing_field",
    "bad_field",  # a field of the wrong shape (a timestamp that is not one, a direction...)
    "unknown_symbol",
    "unknown_kind",
    "not_finite",  # NaN or infinite score
    "future_timestamp",  # ts_event further ahead of its receipt than feeds.yaml allows
    "expired",  # expires_at at or before its receipt
    "oversize",
    "bad_signature",
    "bad_passphrase",
    "stale_timestamp",  # webhook-timestamp outside the tolerance window
    "replayed",  # a webhook-id seen before (within the window)
    "duplicate",  # a signal id the journal already has for this source
    "unknown_source",
    "overloaded",  # the journal queue is full; the sender should retry later
)
TICKER = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
MAX_ID = 128
_DIRECTIONS: dict[str, SignalDirection] = {"long": "long", "buy": "long", "bullish": "long",
                                           "short": "short", "sell": "short", "bearish": "short"}


class Rejection(msgspec.Struct, frozen=True):
    reason: str
    detail: str
    signal_id: str | None = None
    symbol: str | None = None


def payload_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def excerpt(value: Any, limit: int = 40) -> str:
    """A short, printable rendering of a sender's value for a message."""
    text = repr(value) if not isinstance(value, str) else value
    text = "".join(c if c.isprintable() else "?" for c in text)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_ts(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO-8601 text (`Z` or an offset) or epoch seconds (or
    milliseconds, when the number is too large to be seconds). None when it is neither, or
    when the text has no time zone: a naive time is ambiguous, so it is refused, not guessed."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo is not None else None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and 0 < len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        return parsed.astimezone(timezone.utc) if parsed.tzinfo is not None else None
    return None


def check_signal(
    raw: Mapping[str, Any],
    *,
    source: str,
    received: datetime | None,
    kinds: Mapping[str, float | None],
    known_symbols: Collection[str] | None,
    max_future: timedelta,
    digest: str,
    default_kind: str | None = None,
    default_id: str | None = None,
) -> Signal | Rejection:
    """The journal record of `raw`, or why it is refused. `kinds` maps each declared kind to
    its ttl in minutes (None: a signal without expires_at does not expire); with no kinds
    declared any well-formed kind is taken. `digest` is the payload hash recorded with it.
    `received` None: a recorded file read by a backtest, whose receipt is unknown; ts_received
    is then its ts_event (the kind's declared latency stands for the delay)."""
    raw_id = raw.get("id", default_id)
    signal_id = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
    symbol_raw = raw.get("symbol")
    symbol = symbol_raw.strip().upper() if isinstance(symbol_raw, str) else None

    def reject(reason: str, detail: str) -> Rejection:
        return Rejection(reason, detail, signal_id[:MAX_ID] if signal_id else None,
                         symbol if symbol and TICKER.match(symbol) else None)

    kind = raw.get("kind") if raw.get("kind") not in (None, "") else default_kind
    for name, value in (("id", raw_id), ("ts_event", raw.get("ts_event")), ("symbol", symbol_raw),
                        ("kind", kind), ("score", raw.get("score"))):
        if value is None or value == "":
            return reject("missing_field", f"no `{name}`")
    if signal_id is None or not 0 < len(signal_id) <= MAX_ID or not signal_id.isprintable():
        return reject("bad_field", f"`id` must be text or a whole number of 1-{MAX_ID} printable characters")
    if symbol is None or not TICKER.match(symbol):
        return reject("bad_field", f"`symbol` {excerpt(symbol_raw)} is not a ticker")
    if known_symbols is not None and symbol not in known_symbols:
        return reject("unknown_symbol", f"symbol {symbol} is not one the bot trades")
    if not isinstance(kind, str):
        return reject("bad_field", "`kind` must be text")
    if kinds and kind not in kinds:
        return reject("unknown_kind", f"kind {excerpt(kind)} is not declared in feeds.yaml")
    if not kinds and not re.match(r"^[a-z][a-z0-9_]{0,63}$", kind):
        return reject("bad_field", f"`kind` {excerpt(kind)} is not a kind name")
    score = _number(raw.get("score"))
    if score is None:
        return reject("bad_field", f"`score` {excerpt(raw.get('score'))} is not a number")
    if not math.isfinite(score):
        return reject("not_finite", "`score` is NaN or infinite")
    ts_event = parse_ts(raw.get("ts_event"))
    if ts_event is None:
        return reject("bad_field", f"`ts_event` {excerpt(raw.get('ts_event'))} is not a time with a time zone")
    if received is None:
        received = ts_event
    if ts_event > received + max_future:
        return reject("future_timestamp", f"ts_event {ts_event.isoformat()} is ahead of its receipt "
                                          f"({received.isoformat()}) by more than {max_future.total_seconds():g} s")
    direction: SignalDirection | None = None
    raw_direction = raw.get("direction")
    if raw_direction not in (None, ""):
        found = _DIRECTIONS.get(raw_direction.strip().lower()) if isinstance(raw_direction, str) else None
        if found is None:
            return reject("bad_field", f"`direction` {excerpt(raw_direction)} is not long or short")
        direction = found
    expires_at: datetime | None = None
    if raw.get("expires_at") not in (None, ""):
        expires_at = parse_ts(raw.get("expires_at"))
        if expires_at is None:
            return reject("bad_field", f"`expires_at` {excerpt(raw.get('expires_at'))} is not a time with a time zone")
    else:
        ttl = kinds.get(kind)
        if ttl is not None:
            expires_at = ts_event + timedelta(minutes=ttl)
    if expires_at is not None and expires_at <= max(received, ts_event):
        return reject("expired", f"expired at {expires_at.isoformat()}, before it was received")
    return Signal(source=source, signal_id=signal_id, ts_event=ts_event, ts_received=received, symbol=symbol,
                  kind=kind, score=score, direction=direction, expires_at=expires_at, payload_hash=digest)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and 0 < len(value) <= 64:
        try:
            return float(value)
        except ValueError:
            return None
    return None
