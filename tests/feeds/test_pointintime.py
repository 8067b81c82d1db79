"""The timing rule of external signals: usable strictly after max(ts_event, ts_received)
(recorded) or ts_event + latency (declared), until expires_at; the latest usable one wins."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botctl.feeds.pointintime import combine, external_scores
from botctl.spec.feeds import KindSpec

from tests.feeds.feeds_support import T0, signal

KINDS = {"flow": KindSpec(weight=0.6, latency_seconds=60), "dark": KindSpec(weight=0.4)}
SYMBOLS = ("SPY", "QQQ")
TIMES = [T0 + timedelta(hours=h) for h in range(6)]  # one decision an hour


def test_a_signal_is_used_from_the_first_decision_strictly_after_it_is_usable():
    exact = signal("a", TIMES[1] - timedelta(seconds=60), score=2.0)  # usable exactly at TIMES[1] (latency 60 s)
    got = external_scores([exact], TIMES, SYMBOLS, KINDS, mode="declared")["flow"]
    assert np.isnan(got[:2, 0]).all() and (got[2:, 0] == 2.0).all()
    assert np.isnan(got[:, 1]).all()
    assert np.isnan(external_scores([exact], TIMES, SYMBOLS, KINDS)["dark"]).all()


def test_recorded_timing_waits_for_the_later_of_event_and_receipt():
    late = signal("a", TIMES[0], ts_received=TIMES[3] + timedelta(seconds=1), score=1.0)
    recorded = external_scores([late], TIMES, SYMBOLS, KINDS, mode="recorded")["flow"][:, 0]
    declared = external_scores([late], TIMES, SYMBOLS, KINDS, mode="declared")["flow"][:, 0]
    assert np.isnan(recorded[:4]).all() and (recorded[4:] == 1.0).all()
    assert np.isnan(declared[0]) and (declared[1:] == 1.0).all()
    per_source = external_scores([late], TIMES, SYMBOLS, KINDS, mode={"test": "recorded"})["flow"][:, 0]
    assert np.array_equal(per_source, recorded, equal_nan=True)


def test_the_latest_wins_and_an_expired_latest_leaves_the_cell_empty():
    old = signal("old", TIMES[0] - timedelta(hours=1), score=1.0)
    new = signal("new", TIMES[1] - timedelta(minutes=30), score=-3.0, expires_at=TIMES[3])
    got = external_scores([new, old], TIMES, SYMBOLS, KINDS, latency=timedelta(0))["flow"][:, 0]
    assert got[0] == 1.0
    assert list(got[1:3]) == [-3.0, -3.0]
    assert np.isnan(got[3:]).all()  # expired at TIMES[3]: not used at it, and the older one does not come back


def test_direction_fixes_the_sign():
    short = signal("s", TIMES[0] - timedelta(hours=1), score=2.5, direction="short")
    long_ = signal("l", TIMES[0] - timedelta(hours=1), symbol="QQQ", score=-2.5, direction="long")
    got = external_scores([short, long_], TIMES, SYMBOLS, KINDS)["flow"]
    assert got[0, 0] == -2.5 and got[0, 1] == 2.5


def test_combine_weighs_kinds_and_a_missing_required_kind_blocks_the_cell():
    flow = np.array([[1.0, np.nan], [2.0, 1.0]])
    dark = np.array([[np.nan, 5.0], [1.0, np.nan]])
    both = combine({"flow": flow, "dark": dark}, KINDS, required=["flow"], optional=["dark"])
    assert both[0, 0] == pytest.approx(0.6) and np.isnan(both[0, 1])
    assert both[1, 0] == pytest.approx(0.6 * 2 + 0.4) and both[1, 1] == pytest.approx(0.6)
    optional_only = combine({"flow": flow, "dark": dark}, KINDS, optional=["flow", "dark"])
    assert optional_only[0, 1] == pytest.approx(2.0)
    assert np.isnan(combine({"flow": np.full((1, 1), np.nan)}, KINDS, optional=["flow"])).all()


minutes = st.integers(min_value=-120, max_value=480)


@st.composite
def signal_sets(draw):
    count = draw(st.integers(min_value=0, max_value=25))
    out = []
    for i in range(count):
        event = T0 + timedelta(minutes=draw(minutes))
        received = event + timedelta(minutes=draw(st.integers(min_value=0, max_value=90)))
        expires = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=300)))
        out.append(signal(f"s{i}", event, ts_received=received, symbol=draw(st.sampled_from(SYMBOLS)),
                          kind=draw(st.sampled_from(["flow", "dark", "other"])),
                          score=draw(st.floats(min_value=-5, max_value=5, allow_nan=False)),
                          expires_at=None if expires is None else event + timedelta(minutes=expires)))
    return out


@settings(max_examples=300, deadline=None)
@given(base=signal_sets(), later=signal_sets(), cut=st.integers(min_value=0, max_value=5),
       mode=st.sampled_from(["recorded", "declared"]))
def test_no_look_ahead_signals_after_a_decision_never_change_it_or_any_before_it(base, later, cut, mode):
    """Adding signals that are not yet known at decision D (their receipt, or event plus latency,
    is at or after D) changes no row at or before D."""
    decision = TIMES[cut]
    lag = {"flow": timedelta(seconds=60), "dark": timedelta(0), "other": timedelta(0)}

    def known_at(s, t):
        start = max(s.ts_event, s.ts_received) if mode == "recorded" else s.ts_event + lag[s.kind]
        return start < t

    before = [s for s in base if known_at(s, decision)]
    unknown = [s for s in base + later if not known_at(s, decision)]
    unknown = [s.__class__(**{**{f: getattr(s, f) for f in s.__struct_fields__}, "signal_id": "x" + s.signal_id})
               for s in unknown]
    a = external_scores(before, TIMES, SYMBOLS, KINDS, mode=mode)
    b = external_scores(before + unknown, TIMES, SYMBOLS, KINDS, mode=mode)
    for kind in KINDS:
        assert np.array_equal(a[kind][: cut + 1], b[kind][: cut + 1], equal_nan=True)
