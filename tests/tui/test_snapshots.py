"""Screenshots of the dashboard at the four sizes people use, so layout regressions show,
and a scan of every screenful for a cut number. Regenerate the SVGs after an intended
change with `pytest tests/tui/test_snapshots.py --snapshot-update` and look at them.

The journal is a replay with its run times pinned and the dashboard's clock frozen five
minutes after the last mark, so every figure and time on screen is the same on every run."""

from __future__ import annotations

import asyncio
import re

import pytest
from tui_support import add_open_orders, botctl, screen_text, settle

SIZES = [(80, 24), (120, 40), (160, 48), (200, 60)]
IDS = [f"{w}x{h}" for w, h in SIZES]
# An ellipsis right after or before a digit, a sign, a % or a $: a number cut to fit.
CUT_NUMBER = re.compile(r"[\d$%+\-.,]…|…[\d$%]")


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_main_screen(snap_compare, db, make_app, size):
    add_open_orders(db)
    assert snap_compare(make_app(db), terminal_size=size, run_before=settle)


def test_kill_confirmation(snap_compare, db, make_app):
    async def ask(pilot):
        await settle(pilot)
        await pilot.press("K")

    assert snap_compare(make_app(db), terminal_size=(80, 24), run_before=ask)


def test_the_scan_finds_a_cut_number():
    for cut in ("+0.5…", "$128,041.…", "-11…", "12…%", "…$5"):
        assert CUT_NUMBER.search(cut), cut
    for whole in ("+0.58%", "$128,041.50", "SectorRotationMod…l"):
        assert not CUT_NUMBER.search(whole), whole


def screens(app, size):
    """Every screenful of the dashboard at `size`: the first, then one per panel scrolled into view."""
    seen = []

    async def main():
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            seen.append(screen_text(app))
            body = app.query_one("#body")
            for panel in app.query(".panel"):
                body.scroll_to_widget(panel, animate=False)
                await pilot.pause()
                seen.append(screen_text(app))

    asyncio.run(main())
    return seen


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_no_number_is_cut_at_any_size(db, make_app, size):
    assert botctl(db, "kill", "--account", "rotation-sim", "--reason", "a long operator reason for the halt").exit_code == 0
    add_open_orders(db)  # after the kill, which cancels open orders
    pages = screens(make_app(db), size)
    for page in pages:
        cut = [line for line in page.splitlines() if CUT_NUMBER.search(line) or "unkn…" in line or "partia…" in line
               or "fill…" in line]
        assert not cut, "\n".join(cut)
    everything = "\n".join(pages)
    assert "halted: a long operator reason for the halt" in pages[0]  # the reason, on the first screen
    for words in ("partially_filled", "unknown", "XLRE", "2021-03-31", "Win rate", "universe:"):
        assert words in everything, words
