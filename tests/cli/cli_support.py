"""What the CLI tests share: running botctl in-process, and a journal written by a backtest."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from botctl.cli.app import app

REPO_ROOT = Path(__file__).resolve().parents[2]


def invoke(*args, env=None):
    """botctl with these arguments, in-process; no outcome may be a traceback."""
    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def shipped_config(folder: Path) -> Path:
    """A copy of the shipped strategies.yaml and accounts.yaml in `folder`."""
    for name in ("strategies.yaml", "accounts.yaml"):
        shutil.copy(REPO_ROOT / name, folder / name)
    return folder


def backtest_journal(folder: Path, start: str, end: str) -> Path:
    """Copy the shipped config into `folder`, backtest it from start to end, return the journal
    the backtest wrote (botctl-backtests.db, beside the trading journal botctl.db)."""
    shipped_config(folder)
    db = folder / "botctl.db"
    result = invoke("--config-dir", str(folder), "--db", str(db), "backtest", "--start", start, "--end", end, "--json")
    assert result.exit_code == 0, result.output
    return folder / "botctl-backtests.db"
