"""Screenshots of the dashboard, so layout regressions show. Regenerate after an intended
change with `pytest tests/tui/test_snapshots.py --snapshot-update` and look at the SVGs.

The journal is a replay with its run times pinned and the dashboard's clock frozen five
minutes after the last mark, so every figure and time on screen is the same on every run."""

from __future__ import annotations

import pytest
from tui_support import settle


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_main_screen(snap_compare, db, make_app, size):
    assert snap_compare(make_app(db), terminal_size=size, run_before=settle)


def test_kill_confirmation(snap_compare, db, make_app):
    async def ask(pilot):
        await settle(pilot)
        await pilot.press("K")

    assert snap_compare(make_app(db), terminal_size=(80, 24), run_before=ask)
