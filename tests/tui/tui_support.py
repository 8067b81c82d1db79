"""Helpers for the dashboard tests: running botctl, copying journals, waiting for workers and
reading back what a panel drew."""

from __future__ import annotations

import io
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from typer.testing import CliRunner

from botctl.cli.app import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
REPLAY = "2021-01-01:2021-03-31"
# Run timestamps are wall time; copies pin them so snapshots do not change from run to run.
PINNED = "2021-03-31T20:00:05.000000Z"


def botctl(db: Path, *args: str):
    return CliRunner().invoke(cli_app, ["--config-dir", str(ROOT), "--db", str(db), *args])


def copy_journal(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    with sqlite3.connect(dst) as conn:
        conn.execute("UPDATE runs SET started_at = ?, heartbeat_at = ?, ended_at = ?", (PINNED, PINNED, PINNED))
    return dst


def journal_clock(db: Path):
    """Five minutes after the journal's last NAV mark: what the dashboard shows as 'now'."""
    ts = None
    if db.exists() and db.stat().st_size:
        with sqlite3.connect(db) as conn:
            (ts,) = conn.execute("SELECT max(ts_event) FROM nav").fetchone()
    frozen = (datetime.fromisoformat(ts.replace("Z", "+00:00")) + timedelta(minutes=5) if ts
              else datetime(2021, 3, 31, 20, 5, tzinfo=timezone.utc))
    return lambda: frozen


def query(db: Path, sql: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


async def settle(pilot) -> None:
    """Wait for every worker (refresh, kill, resume) and for the UI to draw what they posted."""
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def text_of(widget) -> str:
    """What a panel (or the header) last drew, as plain text at the panel's width."""
    from rich.console import Console

    console = Console(width=max(widget.content_size.width, 40), file=io.StringIO(), record=True,
                      color_system=None, legacy_windows=False)
    console.print(widget.shown)
    return console.export_text()


def screen_text(app) -> str:
    """The whole screen as plain text, as a person sees it (what export_screenshot draws)."""
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, color_system=None,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def add_open_orders(db: Path) -> None:
    """Two open orders with the longest statuses, placed before the last mark (so the
    replay's clock does not move)."""
    with sqlite3.connect(db) as conn:
        run_id, ts = conn.execute("SELECT run_id, ts_event FROM nav WHERE account = 'rotation-sim' ORDER BY id DESC LIMIT 1").fetchone()
        for i, (status, side, filled) in enumerate((("partially_filled", "buy", 40.0), ("unknown", "sell", 0.0))):
            conn.execute("INSERT INTO orders (client_order_id, run_id, account, symbol, side, qty, status, ts_init, ts_event, "
                         "order_type, reason, filled_qty) VALUES (?, ?, 'rotation-sim', 'XLRE', ?, 123.45, ?, ?, ?, "
                         "'market', 'rebalance', ?)", (f"open-{i}", run_id, side, status, ts[:11] + "19:00:00.000000Z",
                                                      ts[:11] + "19:00:00.000000Z", filled))
