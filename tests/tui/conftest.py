"""Dashboard fixtures: a journal left by a short replay (made once per session), private copies
of it, and dashboards over them with a frozen clock taken from the journal."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_support import REPLAY, ROOT, botctl, copy_journal, journal_clock


@pytest.fixture(scope="session")
def replayed(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("tui-replay") / "journal.db"
    result = botctl(db, "run", "--replay", REPLAY, "--health-port", "0")
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def db(replayed, tmp_path) -> Path:
    """A private, writable copy of the replayed journal (kill and resume write to it)."""
    return copy_journal(replayed, tmp_path / "journal.db")


@pytest.fixture
def make_app():
    """make_app(db, **kw) -> a Dashboard over `db` with no refresh timer and a frozen clock."""
    from botctl.tui.app import Dashboard
    from botctl.tui.data import Source

    def make(db: Path, *, health_url: str | None = None, account: str | None = None, clock=None,
             config_dir: Path = ROOT) -> Dashboard:
        source = Source(db, config_dir, health_url=health_url, clock=clock or journal_clock(db))
        return Dashboard(source, account=account, refresh=None)

    return make
