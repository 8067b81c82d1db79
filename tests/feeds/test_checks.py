"""Every way a signal is refused, with a stable reason and no crash."""

from __future__ import annotations

from datetime import timedelta

import pytest

from botctl.feeds.checks import Rejection, check_signal, parse_ts
from botctl.records import Signal

from tests.feeds.feeds_support import T0

GOOD = {"id": "a1", "ts_event": "2024-03-01T15:00:00Z", "symbol": "spy", "kind": "flow", "score": "1.5"}


def check(raw, **kw):
    args = dict(source="s", received=T0 + timedelta(minutes=1), kinds={"flow": 60.0}, known_symbols={"SPY"},
                max_future=timedelta(minutes=5), digest="h")
    return check_signal(raw, **{**args, **kw})


def test_a_good_signal_is_normalised():
    got = check(GOOD)
    assert isinstance(got, Signal)
    assert (got.symbol, got.score, got.ts_event, got.expires_at) == ("SPY", 1.5, T0, T0 + timedelta(minutes=60))
    assert check({**GOOD, "direction": "SELL"}).direction == "short"
    assert check({**GOOD, "ts_event": T0.timestamp()}).ts_event == T0
    assert check({**GOOD, "ts_event": T0.timestamp() * 1000}).ts_event == T0


@pytest.mark.parametrize("change, reason", [
    ({"id": None}, "missing_field"), ({"score": ""}, "missing_field"), ({"kind": None}, "missing_field"),
    ({"symbol": "QQQ"}, "unknown_symbol"), ({"symbol": "spy; drop"}, "bad_field"),
    ({"score": "nan"}, "not_finite"), ({"score": float("inf")}, "not_finite"), ({"score": True}, "bad_field"),
    ({"score": [1]}, "bad_field"), ({"kind": "insider"}, "unknown_kind"),
    ({"ts_event": "2024-03-01T15:00:00"}, "bad_field"), ({"ts_event": "yesterday"}, "bad_field"),
    ({"ts_event": "2024-03-01T16:00:00Z"}, "future_timestamp"),
    ({"expires_at": "2024-03-01T15:00:30Z"}, "expired"), ({"direction": "up"}, "bad_field"),
    ({"id": "x" * 200}, "bad_field"), ({"id": {"a": 1}}, "bad_field"),
])
def test_each_bad_signal_has_its_reason(change, reason):
    got = check({**GOOD, **change})
    assert isinstance(got, Rejection) and got.reason == reason, got
    assert "\n" not in got.detail and len(got.detail) < 300


def test_timestamps_without_a_zone_or_out_of_range_are_none():
    assert parse_ts("2024-03-01T15:00:00+02:00") == T0 - timedelta(hours=2)
    assert parse_ts("2024-03-01") is None and parse_ts(float("nan")) is None and parse_ts(1e300) is None
