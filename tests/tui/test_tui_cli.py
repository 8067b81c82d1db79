"""`botctl tui` as a command: registered with the CLI, its options, an unknown account."""

from __future__ import annotations

import pytest
from tui_support import ROOT
from typer.testing import CliRunner

from botctl.cli import tui_cmd
from botctl.cli.app import app


@pytest.fixture(scope="module", autouse=True)
def registered():
    if not any(c.name == "tui" or (c.callback and c.callback.__name__ == "tui") for c in app.registered_commands):
        tui_cmd.register(app)


def test_help_lists_the_options():
    result = CliRunner().invoke(app, ["tui", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--account", "--refresh", "--health-url"):
        assert option in result.output


def test_an_unknown_account_is_a_usage_error(db):
    result = CliRunner().invoke(app, ["--config-dir", str(ROOT), "--db", str(db), "tui", "--account", "nope"])
    assert result.exit_code == 2
    assert "unknown account 'nope'" in result.output


def test_refresh_must_be_positive():
    assert CliRunner().invoke(app, ["tui", "--refresh", "0"]).exit_code == 2


def test_without_a_terminal_it_exits_2_with_one_line(db):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db), "tui"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "needs a terminal" in result.stderr
