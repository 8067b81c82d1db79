"""The command line itself: global options on either side of the command, usage errors as one
line, `--json` errors as a JSON object, unknown accounts and symbols, exit code 3, and text
from the journal escaped before it reaches a terminal. Real journals from a short replay,
through typer's CliRunner."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from botctl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
BOX = set("│╭╮╰╯─")


def botctl(*args: str, env: dict | None = None):
    result = CliRunner().invoke(app, list(args), env={"BOTCTL_HEALTH_PORT": "0", **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not BOX & set(lines[0]), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("journal") / "botctl.db"
    result = botctl("--config-dir", str(ROOT), "--db", str(db), "run", "--replay", "2024-01-02:2024-01-31")
    assert result.exit_code == 0, result.output
    return db


# global options before or after the command ---------------------------------------------------

def test_global_options_work_after_the_command_as_before_it(journal, tmp_path):
    before = botctl("--config-dir", str(ROOT), "--db", str(journal), "status", "--json")
    after = botctl("status", "--json", "--db", str(journal), "--config-dir", str(ROOT))
    mixed = botctl("--config-dir", str(ROOT), "status", f"--db={journal}", "--json")
    assert before.exit_code == after.exit_code == mixed.exit_code == 0, after.output
    assert json.loads(before.stdout)["accounts"] == json.loads(after.stdout)["accounts"] == json.loads(mixed.stdout)["accounts"]
    assert set(json.loads(after.stdout)["accounts"]) == {"rotation-sim", "adaptive-sim", "signals-sim"}
    # the later of two spellings wins, wherever each is written
    missing = tmp_path / "missing.db"
    result = botctl("--db", str(journal), "status", "--db", str(missing))
    assert result.exit_code == 1 and f"no database at {missing}" in result.stderr


def test_a_command_option_value_is_never_taken_for_a_global_option(journal):
    result = botctl("--db", str(journal), "tail", "--kind", "--db")
    assert result.exit_code == 2
    assert "--kind must be one of" in one_error_line(result)


def test_a_global_option_after_the_command_without_its_value_is_a_usage_error(journal):
    result = botctl("--config-dir", str(ROOT), "status", "--db")
    assert result.exit_code == 2
    assert "Option '--db' requires an argument" in one_error_line(result)


# usage errors: one line, exit 2 -------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["run", "--once", "--health-port", "99999"], "65535"),
    (["tail", "--interval", "0"], "0.05"),
    (["status", "--bogus"], "No such option: --bogus"),
    (["frobnicate"], "No such command 'frobnicate'"),
], ids=["health-port", "interval", "no-such-option", "no-such-command"])
def test_usage_errors_are_one_line_and_exit_2(journal, args, says):
    result = botctl("--config-dir", str(ROOT), "--db", str(journal), *args)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert says in line and "-h'" in line  # where to find help, on the same line


def test_tail_with_more_lines_than_sqlite_can_count_prints_them_all(journal):
    everything = botctl("--config-dir", str(ROOT), "--db", str(journal), "tail", "-n", "100000")
    huge = botctl("--config-dir", str(ROOT), "--db", str(journal), "tail", "-n", "99999999999999999999")
    assert huge.exit_code == 0, huge.output
    assert huge.stdout == everything.stdout and huge.stdout.count("\n") >= 2


# --json errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, code", [
    (["status", "--json", "--account", "nope"], 2),
    (["tail", "--json", "--interval", "0"], 2),
    (["--db", "/dev/null", "status", "--json"], 1),
])
def test_json_errors_are_a_json_object_on_stdout_and_one_line_on_stderr(journal, args, code):
    result = botctl("--config-dir", str(ROOT), "--db", str(journal), *args)
    assert result.exit_code == code
    body = json.loads(result.stdout)
    assert body["exit_code"] == code
    assert one_error_line(result) == f"error: {body['error']}"


# unknown accounts and symbols ---------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["tail", "--account", "nope"], "unknown account 'nope' (known: adaptive-sim, rotation-sim, signals-sim)"),
    (["tail", "--kind", "orders", "--symbol", "NOPE"], "unknown symbol 'NOPE' (known: "),
    (["status", "--account", "nope"], "unknown account(s): nope (known: rotation-sim, adaptive-sim, signals-sim)"),
    (["status", "--account", "*"], "unknown account(s): *"),
    (["tail", "--account", "%"], "unknown account '%'"),
])
def test_unknown_accounts_and_symbols_are_usage_errors_listing_the_known_ones(journal, args, says):
    result = botctl("--config-dir", str(ROOT), "--db", str(journal), *args)
    assert result.exit_code == 2
    assert says in one_error_line(result)
    if "--symbol" in args:
        assert "XLK" in result.stderr


def test_tail_accepts_a_known_symbol_and_a_configured_account_with_no_rows_yet(journal, config_dir):
    result = botctl("--config-dir", str(ROOT), "--db", str(journal), "tail", "--kind", "fills", "--symbol", "xlk")
    assert result.exit_code == 0 and result.stdout and all(" XLK @ " in line for line in result.stdout.splitlines())
    accounts = config_dir / "accounts.yaml"
    accounts.write_text(accounts.read_text().replace("  adaptive-sim:", "  fresh-sim:", 1))
    result = botctl("--config-dir", str(config_dir), "--db", str(journal), "tail", "--account", "fresh-sim")
    assert (result.exit_code, result.stdout) == (0, "")


# exit code 3 --------------------------------------------------------------------------------------

def test_status_require_running_exits_3_when_no_bot_runs(journal):
    plain = botctl("--config-dir", str(ROOT), "--db", str(journal), "status")
    assert plain.exit_code == 0
    result = botctl("--config-dir", str(ROOT), "--db", str(journal), "status", "--require-running", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["running"] is False
    assert one_error_line(result) == "error: the bot is not running (last run finished)"


# text from the journal is escaped -----------------------------------------------------------------

def test_control_characters_from_the_journal_never_reach_the_terminal(journal, tmp_path):
    db = tmp_path / "hostile.db"
    shutil.copy(journal, db)
    evil = "evil\x1b[2J\nFAKE: all good\u202e"
    with sqlite3.connect(db) as conn:
        for table in ("nav", "orders", "fills", "events", "positions"):
            conn.execute(f"UPDATE {table} SET account = ? WHERE account = 'adaptive-sim'", (evil,))
        conn.execute("UPDATE events SET message = message || ?", (" \x1b]0;owned\x07\r\n",))
        conn.execute("UPDATE orders SET symbol = ? WHERE id = (SELECT MAX(id) FROM orders)", ("X\x1b[31m",))
    outputs = []
    for args in (["status"], ["tail", "-n", "50"], ["tail", "--kind", "orders"], ["tail", "--kind", "nav"]):
        result = CliRunner().invoke(app, ["--config-dir", str(ROOT), "--db", str(db), *args], color=True)
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
        assert not any(c in result.stdout for c in "\x1b\r\x07\u202e"), (args, result.stdout)
        assert "\nFAKE" not in result.stdout
    assert "evil\\x1b[2J\\nFAKE: all good\\u202e" in outputs[0]
    assert "\\x1b]0;owned\\x07\\r\\n" in outputs[1]
    assert "X\\x1b[31m" in outputs[2]


# Ctrl-C inside another exception ------------------------------------------------------------------

def test_ctrl_c_wrapped_by_python_in_another_exception_is_still_an_interruption():
    import typer

    from botctl.cli.app import BotctlGroup

    probe = typer.Typer(cls=BotctlGroup)

    @probe.command()
    def load() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:  # what Python does to Ctrl-C during a class's __set_name__
            raise RuntimeError("Error calling __set_name__ on 'cached_property' instance") from exc

    @probe.command()
    def other() -> None:
        pass

    result = CliRunner().invoke(probe, ["load"])
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")
