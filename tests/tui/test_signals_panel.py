"""The dashboard's signals panel, driven by Textual's pilot: with a feeds.yaml it shows each
source (the journal's and the configured ones) with its last signal, today's count and whether
it is stale, and the newest rejections; without one it is not on screen at all."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_snapshots import CUT_NUMBER
from tui_support import ROOT, journal_clock, screen_text, settle, text_of

from botctl.records import Event, Signal
from botctl.store import Store
from botctl.tui import widgets as w

FEEDS = """\
kinds: {flow: {}}
sources:
  vendor: {type: http_poll, url: "https://api.example.com/v1/flow", kind: flow}
  alerts: {type: webhook, port: 0, secret_env: ALERTS_SECRET}
  earlier: {type: journal}
"""


def drive(app, steps, size=(160, 48)):
    async def main():
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await steps(pilot)

    asyncio.run(main())


@pytest.fixture
def with_feeds(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    for name in ("strategies.yaml", "accounts.yaml"):
        shutil.copy(ROOT / name, folder / name)
    (folder / "feeds.yaml").write_text(FEEDS)
    return folder


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_the_panel_shows_each_source_its_staleness_and_the_newest_rejections(db, make_app, with_feeds, size):
    now = journal_clock(db)()
    today = now.replace(hour=13, minute=0, second=0, microsecond=0)
    with Store.open(db) as store:
        store.append_signals([
            Signal(source="vendor", signal_id=f"v{i}", ts_event=today + timedelta(minutes=i), ts_received=today + timedelta(minutes=i),
                   symbol="XLK", kind="flow", score=1.0) for i in range(3)
        ] + [Signal(source="vendor", signal_id="old", ts_event=today - timedelta(days=2),
                    ts_received=today - timedelta(days=2), symbol="XLK", kind="flow", score=1.0)])
        store.insert(Event(ts_event=today + timedelta(hours=1), subsystem="feeds", type="feed.stale", severity="WARN",
                           message="vendor: no good answer", details={"source": "vendor"}))
        for i in range(7):
            store.insert(Event(ts_event=today + timedelta(minutes=10 + i), subsystem="feeds", type="signal.rejected",
                               severity="WARN", message=f"alerts: signal refused, never traded on: #{i}",
                               details={"source": "alerts", "reason": "unknown_symbol" if i < 6 else "bad_signature"}))
    app = make_app(db, config_dir=with_feeds)

    async def steps(pilot):
        panel = app.query_one(w.SignalsPanel)
        assert panel.display and panel.region.height > 0
        text = text_of(panel)
        lines = {line.split()[0]: line for line in text.splitlines() if line.strip()[:1].isalpha()}
        # vendor: 3 today (the one two days old is not), its last receipt, stale since its feed.stale
        assert "2021-03-31 13:02Z" in lines["vendor"] and " 3 " in lines["vendor"]
        assert "STALE since 2021-03-31 14:00Z" in lines["vendor"]
        # alerts is configured and has sent nothing: listed, fine; the journal source is not a live one
        assert lines["alerts"].split()[1:] == ["-", "0", "ok"]
        assert "earlier" not in text
        # the five newest rejections, newest first
        assert text.count("signal refused") == 5
        assert text.index("alerts: bad_signature") < text.index("#5") < text.index("#2")
        assert "#1" not in text
        assert not CUT_NUMBER.search(text)
        app.query_one("#body").scroll_to_widget(panel, animate=False)
        await pilot.pause()
        assert "Signals" in screen_text(app)

    drive(app, steps, size)


def test_without_feeds_yaml_the_panel_is_not_on_screen(db, make_app):
    app = make_app(db)  # the repository's config folder: no feeds.yaml

    async def steps(pilot):
        panel = app.query_one(w.SignalsPanel)
        assert not panel.display and panel.region.height == 0
        assert "Signals" not in screen_text(app)

    drive(app, steps)


def test_a_broken_feeds_yaml_is_one_line_and_the_journals_sources_still_show(db, make_app, with_feeds):
    (with_feeds / "feeds.yaml").write_text("kinds: {flow: {}}\nsources:\n  vendor: {type: carrier_pigeon}\n")
    with Store.open(db) as store:
        store.append_signals([Signal(source="rec", signal_id="1", ts_event=datetime(2021, 3, 31, 15, tzinfo=timezone.utc),
                                     ts_received=datetime(2021, 3, 31, 15, tzinfo=timezone.utc), symbol="XLK",
                                     kind="flow", score=1.0)])
    app = make_app(db, config_dir=with_feeds)

    async def steps(pilot):
        text = text_of(app.query_one(w.SignalsPanel))
        assert "feeds.yaml: feeds.yaml:3" in text and "rec" in text and "no signal rejected" in text

    drive(app, steps)
