"""Bad input: fuzzed strategies.yaml / accounts.yaml through the commands that act on them
(validate's own fuzzing is tests/cli/test_cli_validate_fuzz.py, whose generators are reused
here), malformed command lines (a table, then Hypothesis), and signals sent while the journal
is being written.

What must hold, every time: a documented exit code (0 ok, 1 runtime, 2 usage, 3 not running,
4 config), the same one for the same input, a message that says what is wrong, and never a
traceback or an "internal error".
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from chaos_support import FUZZ_SCALE, REPO, clean_env, consistency, integrity, no_traceback
from cli.test_cli_validate_fuzz import HOSTILE, PARSED, SHIPPED, YAML_TEXT, mutated_yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from botctl.cli.app import app

runner = CliRunner()
CODES = {0, 1, 2, 3, 4}
PROBLEM_LINE = re.compile(r"^(strategies|accounts)\.yaml:\d+:\d+: ")
SUMMARY_LINE = re.compile(r"^\d+ problem\(s\) in the config; nothing was run$")
FILES = ("strategies.yaml", "accounts.yaml")


def invoke(args: list[str], env: dict | None = None):
    result = runner.invoke(app, args, env={"BOTCTL_HEALTH_PORT": "0", **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert no_traceback(result.output), result.output
    assert result.exit_code in CODES, (args, result.exit_code, result.output)
    return result


def check_shape(result) -> None:
    """A non-zero exit explains itself in the documented shape."""
    if result.exit_code == 4:
        lines = result.stderr.rstrip("\n").split("\n")
        assert PROBLEM_LINE.match(lines[0]) and SUMMARY_LINE.match(lines[-1]), result.stderr
    elif result.exit_code in (1, 2, 3):
        assert result.stderr.strip(), "an error exit with nothing said"
        if result.exit_code != 2 or result.stderr.startswith("error: "):
            last = result.stderr.strip().splitlines()[-1]
            assert last.startswith("error: "), result.stderr


# --- fuzzed config files through plan, backtest, run --replay and status --------------------------


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def null_document(which: str, data: bytes) -> bool:
    """strategies.yaml holding a bare null (`null`, `~`, `null\n...`): a known bug, see
    test_a_strategies_file_holding_only_null_is_a_config_error; kept out of the fuzzing so the
    fuzzers look for other things."""
    import yaml

    if which != "strategies.yaml" or not data.strip():
        return False
    try:
        return yaml.safe_load(data) is None
    except Exception:  # noqa: BLE001 - not YAML at all
        return False


def with_files(folder: Path, which: str, data: bytes) -> Path:
    for name in FILES:
        (folder / name).write_bytes(data if name == which else SHIPPED[name])
    return folder


FUZZ = settings(max_examples=int(100 * FUZZ_SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture],
                derandomize=True)


@pytest.mark.timeout(120 * FUZZ_SCALE)
@FUZZ
@given(data=st.data(), which=st.sampled_from(FILES))
def test_fuzzed_configs_through_plan_are_answered_the_same_way_twice(folder, data, which):
    text = data.draw(mutated_yaml(PARSED[which]) | YAML_TEXT.map(lambda t: SHIPPED[which][:200] + t.encode()))
    assume(not null_document(which, text))
    config = with_files(folder, which, text)
    first = invoke(["--config-dir", str(config), "plan", "--json"])
    second = invoke(["--config-dir", str(config), "plan", "--json"])
    assert (first.exit_code, first.output) == (second.exit_code, second.output)  # stable
    check_shape(first)
    if first.exit_code == 0:
        assert json.loads(first.stdout)["plan_id"]


@pytest.mark.timeout(180 * FUZZ_SCALE)
@settings(max_examples=int(40 * FUZZ_SCALE), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), which=st.sampled_from(FILES))
def test_fuzzed_configs_through_run_replay_backtest_and_status(folder, tmp_path_factory, data, which):
    text = data.draw(mutated_yaml(PARSED[which]))
    assume(not null_document(which, text))
    config = with_files(folder, which, text)
    db = tmp_path_factory.mktemp("fuzz") / "journal.db"
    base = ["--config-dir", str(config), "--db", str(db)]
    replay = invoke(base + ["run", "--replay", "2024-01-02:2024-01-31"])
    check_shape(replay)
    event(f"replay exit {replay.exit_code}")
    backtest = invoke(base + ["backtest", "--start", "2024-01-02", "--end", "2024-02-29", "--no-journal", "--json"])
    check_shape(backtest)
    assert replay.exit_code == backtest.exit_code or 4 not in (replay.exit_code, backtest.exit_code), \
        (replay.output, backtest.output)  # a config error is one for every command
    if db.exists():
        status = invoke(base + ["status", "--json"])  # status works with any config, saying what is wrong
        assert status.exit_code == 0, status.output
        body = json.loads(status.stdout)
        assert (body["config_error"] is None) == (replay.exit_code != 4), body["config_error"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("document", [b"null\n", b"~\n", b"null\n...\n"], ids=["null", "tilde", "null-end"])
def test_a_strategies_file_holding_only_null_is_a_config_error(folder, tmp_path, document):
    config = with_files(folder, "strategies.yaml", document)
    base = ["--config-dir", str(config), "--db", str(tmp_path / "journal.db")]
    for args in (["validate"], ["plan"], ["backtest", "--no-journal"], ["run", "--replay", "2024-01-02:2024-01-31"]):
        result = runner.invoke(app, base + args)
        assert "internal error" not in result.output, (args, result.output)
        assert result.exit_code == 4, (args, result.output)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["alias-bomb", "nested-lists-100k", "non-utf8", "python-tag", "over-1-MiB", "empty"])
def test_hostile_config_files_through_run_and_backtest(folder, tmp_path, name):
    for which in FILES:
        config = with_files(folder, which, HOSTILE[name])
        base = ["--config-dir", str(config), "--db", str(tmp_path / "journal.db")]
        for args in (["run", "--replay", "2024-01-02:2024-01-31"], ["backtest", "--no-journal"], ["run", "--once"]):
            result = invoke(base + args)
            assert result.exit_code == 4, (which, args, result.output)
            check_shape(result)


# --- malformed command lines -------------------------------------------------------------------------

BAD_ARGS = [
    (["run", "--replay", "nonsense"], 2, "--replay expects START:END"),
    (["run", "--replay", "2024-13-01:"], 2, "expects a date like"),
    (["run", "--replay", "2024-02-01:2023-01-01"], 2, "is after end"),
    (["run", "--replay", "2020-01-01:2020-02-01", "--speed", "0"], 2, "--speed expects simulated seconds"),
    (["run", "--replay", "2020-01-01:2020-02-01", "--speed", "fast"], 2, "--speed expects simulated seconds"),
    (["run", "--replay", "2020-01-01:2020-02-01", "--speed", "nan"], 2, "--speed expects simulated seconds"),
    (["run", "--replay", "2020-01-01:2020-02-01", "--speed", "inf"], 2, "--speed expects simulated seconds"),
    (["run", "--replay", "2020-01-01:2020-02-01", "--speed", "-5"], 2, "--speed expects simulated seconds"),
    (["run", "--replay", "2020-01-01:2020-02-01", "--speed", "1e-300"], 2, "--speed expects simulated seconds"),
    (["run", "--replay", "2020-01-01:", "--once"], 2, "--once and --live are for trading"),
    (["run", "--once", "--health-port", "70000"], 2, "not in the range 0<=x<=65535"),
    (["tail", "--kind", "bogus"], 2, "--kind must be one of"),
    (["tail", "-n", "-1"], 2, "-1 is not in the range x>=0"),
    (["tail", "--severity", "LOUD"], 2, "--severity must be one of"),
    (["tail", "--kind", "nav", "--symbol", "XLK"], 2, "--symbol does not apply"),
    (["tail", "--kind", "orders", "--severity", "WARN"], 2, "--severity applies to --kind events"),
    (["tail", "--interval", "0"], 2, "not in the range x>=0.05"),
    (["status", "--account", "nope"], 2, "unknown account(s): nope"),
    (["backtest", "--start", "2024-99-99"], 2, "expects a date like"),
    (["backtest", "--start", "2024-06-01", "--end", "2024-01-01"], 2, "is after --end"),
    (["backtest", "--model", "NoSuchModel"], 2, "unknown model 'NoSuchModel'"),
    (["backtest", "--account", "nobody"], 2, "unknown account 'nobody'"),
    (["backtest", "--risk-free", "abc"], 2, "'abc' is not a valid float"),
    (["kill", "--timeout", "abc"], 2, "'abc' is not a valid float"),
    (["kill", "--timeout", "-1"], 2, "not in the range x>=0"),
    (["kill", "--account", "nobody"], 2, "unknown account 'nobody'"),
    (["resume", "--account", "nobody"], 2, "unknown account 'nobody'"),
    (["frobnicate"], 2, "No such command"),
    (["plan", "--bogus"], 2, "No such option: --bogus"),
    (["plan", "--json", "extra-arg"], 2, "unexpected extra argument"),
    (["--db"], 2, "requires an argument"),
    (["tui", "--refresh", "0"], 2, "not in the range x>=0.5"),
    (["service", "unit", "--bogus"], 2, "No such option"),
    (["--config-dir", "/nonexistent/folder", "plan"], 4, "no such file"),
    (["--data", "/nonexistent/bars.parquet", "backtest"], 1, "no market data at /nonexistent/bars.parquet"),
    (["--db", "/dev/null", "status"], 1, "error: "),
    (["--db", "/proc/version", "run", "--replay", "2024-01-02:2024-01-31"], 1, "error: "),
    (["run", "--replay", "1900-01-01:1900-02-01"], 1, "nothing in the requested range"),
]


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("journal") / "journal.db"
    assert invoke(["--config-dir", str(REPO), "--db", str(db), "run", "--replay", "2024-01-02:2024-01-31"]).exit_code == 0
    return db


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, code, says", BAD_ARGS, ids=[" ".join(a)[:40] for a, _, _ in BAD_ARGS])
def test_a_malformed_command_line_gets_its_exit_code_and_says_why_every_time(journal, args, code, says):
    base = ["--config-dir", str(REPO), "--db", str(journal)]
    results = [invoke(base + args) for _ in range(2)]
    assert [r.exit_code for r in results] == [code, code], results[0].output
    assert results[0].output == results[1].output
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", results[0].output).split())  # click's boxed errors
    assert says in said, results[0].output


@pytest.mark.timeout(60)
def test_malformed_command_lines_in_a_real_process_never_show_a_traceback(journal):
    picks = [BAD_ARGS[i] for i in (0, 7, 14, 23, 26, 29, 31)]
    for args, code, says in picks:
        proc = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(REPO), "--db", str(journal), *args],
                              env=clean_env(), capture_output=True, text=True, timeout=60)
        assert proc.returncode == code, (args, proc.stderr)
        assert no_traceback(proc.stdout + proc.stderr) and proc.stderr.strip(), (args, proc.stderr)


# Random command lines from the real vocabulary (never one that would trade or follow forever).
COMMANDS = ["validate", "plan", "backtest", "status", "tail", "kill", "resume", "service", "run"]
OPTIONS = ["--json", "--account", "--model", "--start", "--end", "--kind", "-n", "--severity", "--symbol", "--speed",
           "--replay", "--reason", "--flatten", "--timeout", "--no-journal", "--risk-free", "--user", "--report", "-h",
           "--interval", "unit", "--once", "--live", "--yes", "--bogus", "--"]
VALUES = ["rotation-sim", "adaptive-sim", "SectorRotationModel_v1", "XLK", "orders", "events", "nav", "WARN", "3", "-3",
          "0", "1e309", "nan", "max", "2024-01-02", "2024-02-30", "2024-01-02:2024-01-31", "2024-01-31:2024-01-02", ":",
          "", " ", "é", "\x1b[31m", "a" * 300, "--", "-", "'; DROP TABLE orders; --"]


@st.composite
def command_lines(draw) -> list[str]:
    argv = [draw(st.sampled_from(COMMANDS))]
    argv += draw(st.lists(st.sampled_from(OPTIONS) | st.sampled_from(VALUES) | st.text(max_size=8), max_size=6))
    if argv[0] == "run":  # only ever a (short, bounded) replay: never trading, never the loop
        argv += ["--replay", draw(st.sampled_from(["2024-01-02:2024-01-31", "2024-02-30:", "x", ""]))]
        argv = [a for a in argv if a not in ("--once", "--live", "--yes")] + ["--once"] * draw(st.booleans())
    if argv[0] == "backtest":
        argv += ["--start", "2024-01-02", "--end", "2024-02-29", "--no-journal"]
    return argv


@pytest.mark.timeout(150 * FUZZ_SCALE)
@settings(max_examples=int(200 * FUZZ_SCALE), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_random_command_lines_get_a_documented_exit_code_and_no_traceback(journal, tmp_path_factory, argv):
    report = tmp_path_factory.getbasetemp() / "report.html"
    argv = [str(report) if a == "--report" else a for a in argv]
    db = tmp_path_factory.getbasetemp() / "fuzz-journal.db"
    if not db.exists():
        db.write_bytes(journal.read_bytes())
    result = invoke(["--config-dir", str(REPO), "--db", str(db), *argv])
    event(f"{argv[0]} exit {result.exit_code}")
    if result.exit_code:
        assert result.output.strip(), argv


# --- signals sent while the journal is written ----------------------------------------------------


def _spawn(db: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "botctl", "--config-dir", str(REPO), "--db", str(db), *args],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _writing(db: Path, proc: subprocess.Popen, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
                if conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]:
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.02)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_replay_always_stops_it_cleanly_with_exit_0(tmp_path, seed, sig):
    rng = random.Random(seed)
    outcomes = []
    for attempt in range(2):
        db = tmp_path / f"journal-{attempt}.db"
        proc = _spawn(db, "run", "--replay", "2015-01-01:2024-12-31")
        _writing(db, proc)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert no_traceback(out + err), err
        outcomes.append(proc.returncode)
        assert integrity(db) == "ok" and consistency(db) == []
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT status FROM runs").fetchall() == [("stopped",)]
            assert conn.execute("SELECT COUNT(*) FROM events WHERE type = 'run.stopped'").fetchone()[0] == 1
        assert "replay stopped:" in out, out
    assert outcomes == [0, 0], outcomes


def _tables(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


@pytest.mark.timeout(120)
def test_a_signal_while_a_backtest_journals_leaves_all_of_it_or_none(tmp_path, seed):
    """The backtest journals its whole run in one transaction at the end: a signal at any
    moment leaves the run whole or absent. SIGINT says "interrupted" (exit 130); SIGTERM ends
    the process by the signal (no handler, nothing half-written); 0 if it had finished."""
    rng = random.Random(seed)
    seen = set()
    for attempt in range(4):
        sig = (signal.SIGINT, signal.SIGTERM)[attempt % 2]
        proc = _spawn(tmp_path / f"journal-{attempt}.db", "backtest", "--json")
        db = tmp_path / f"journal-{attempt}-backtests.db"  # where backtests are journaled
        time.sleep(rng.uniform(0.4, 1.4))
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert no_traceback(out + err), err
        allowed = {0, 130} if sig == signal.SIGINT else {0, -signal.SIGTERM}
        assert proc.returncode in allowed, (sig, proc.returncode, err)
        if proc.returncode == 130:
            assert err.strip().splitlines()[-1] == "interrupted", err
        if proc.returncode == 0:
            assert json.loads(out)["run_id"]
        seen.add(proc.returncode)
        if db.exists() and _tables(db):  # a file without tables: killed while creating it, nothing written
            assert integrity(db) == "ok" and consistency(db) == []
            with contextlib.closing(sqlite3.connect(db)) as conn:
                runs = conn.execute("SELECT status FROM runs").fetchall()
            assert runs in ([], [("finished",)]), runs
            if proc.returncode == 0:
                assert runs == [("finished",)]


# --- Ctrl-C while botctl starts -------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("marker", ["typer.colors", "msgspec", "polars"],
                         ids=["importing-typer", "importing-botctl", "importing-the-command"])
def test_ctrl_c_while_botctl_starts_exits_130_with_one_line(tmp_path, marker):
    """SIGINT as soon as the child reports (-X importtime) that `marker` was imported: during
    the start-up imports, before any command code runs, or while the command imports its
    libraries. Every time: exit 130, "interrupted", no traceback."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "botctl", "--config-dir", str(REPO),
                             "--db", str(tmp_path / "journal.db"), "backtest", "--no-journal"],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("import time:") and line.rstrip().endswith(f" {marker}"):
            proc.send_signal(signal.SIGINT)
            break
    else:
        pytest.fail(f"{marker} never imported: {''.join(lines)[-2000:]}")
    out, err = proc.communicate(timeout=60)
    said = [line for line in err.splitlines() if not line.startswith("import time:")]
    assert no_traceback(out + err), err
    assert (proc.returncode, said) == (130, ["interrupted"]), (proc.returncode, said)


# --- files that are not what they claim to be -----------------------------------------------------


def _special(kind: str, path: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero-link":
        path.symlink_to("/dev/zero")
    elif kind == "sparse-3gb":
        with open(path, "wb") as fh:
            fh.truncate(3 << 30)  # no disk used: the size alone must refuse it
    elif kind == "one-byte-over":
        path.write_bytes(b"#" * ((1 << 20) + 1))


CONFIG_SAYS = {"fifo": "is a FIFO (named pipe), not a file", "dev-zero-link": "is a character device, not a file",
               "sparse-3gb": "file is too large (3221225472 bytes; the limit is 1048576)",
               "one-byte-over": "file is too large (1048577 bytes; the limit is 1048576)"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(CONFIG_SAYS))
@pytest.mark.parametrize("which", FILES)
def test_a_config_file_that_never_ends_or_never_opens_is_refused_before_it_is_read(journal, tmp_path, kind, which):
    config = tmp_path / "config"
    config.mkdir()
    for name in FILES:
        if name != which:
            (config / name).write_bytes((REPO / name).read_bytes())
    _special(kind, config / which)
    result = invoke(["--config-dir", str(config), "--db", str(journal), "validate"])
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [f"{which}:1:1: {CONFIG_SAYS[kind]}",
                                          "1 problem(s) in the config; nothing was run"]
    status = invoke(["--config-dir", str(config), "--db", str(journal), "status"])  # status works without a config
    assert status.exit_code == 0 and f"config: {which}:1:1: {CONFIG_SAYS[kind]}" in status.stdout


JOURNAL_ARGS = [["status"], ["tail"], ["tail", "-f"], ["tui"], ["run", "--replay", "2024-01-02:2024-01-31"],
                ["backtest", "--start", "2024-01-02", "--end", "2024-01-31"], ["kill"]]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args", JOURNAL_ARGS, ids=[" ".join(a)[:20] for a in JOURNAL_ARGS])
def test_a_fifo_or_a_device_as_the_journal_is_one_line_never_a_hang(tmp_path, args):
    fifo = tmp_path / "journal.fifo"
    os.mkfifo(fifo)
    for db, says in ((fifo, f"error: --db {fifo} is a FIFO (named pipe), not a botctl database"),
                     (Path("/dev/zero"), "error: --db /dev/zero is a character device, not a botctl database")):
        proc = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(REPO), "--db", str(db), *args],
                              env=clean_env(), capture_output=True, text=True, timeout=30)
        assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (1, [says], ""), args
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, code, says", [
    (["--data", "/dev/null", "backtest"], 1, "error: --data /dev/null is a character device, not a data file or folder"),
    (["--db", "d" * 100_000, "status"], 2, "error: --db: file name too long (100000 characters)"),
    (["--db", "/" + "d/" * 3000 + "x.db", "status"], 2, "error: --db: file name too long (6005 characters)"),
], ids=["data-dev-null", "db-100k-name", "db-6k-path"])
def test_impossible_global_paths_are_one_line_errors(journal, args, code, says):
    result = invoke(["--config-dir", str(REPO), *args])
    assert (result.exit_code, result.stderr.splitlines()) == (code, [says])


# --- backtest --report never destroys anything -----------------------------------------------------


REPORT_ARGS = ["backtest", "--start", "2024-01-02", "--end", "2024-02-29"]


@pytest.mark.timeout(120)
def test_backtest_report_refuses_every_path_that_would_destroy_something(journal, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    db = work / "botctl.db"
    db.write_bytes(journal.read_bytes())
    (work / "link.db").symlink_to(db)
    os.link(db, work / "hard.db")
    (work / "other.db").write_bytes(journal.read_bytes())
    os.mkfifo(work / "fifo")
    before = db.read_bytes()
    cases = [
        (str(db), "is a journal"), (str(work / "." / "botctl.db"), "is a journal"),
        (f"{db}-wal", "is a journal"), (f"{db}-shm", "is a journal"), (str(work / "link.db"), "is a journal"),
        (str(work / "botctl-backtests.db"), "is a journal"), (str(work / "botctl-backtests.db-wal"), "is a journal"),
        (str(work / "hard.db"), "is the journal"), (str(work / "other.db"), "is an SQLite database"),
        (".", "is a directory"), (str(work), "is a directory"), ("/dev/null", "is a character device"),
        (str(work / "fifo"), "is a FIFO"), (str(work / "nowhere" / "deeper" / "r.html"), "does not exist (it is not created"),
    ]
    for path, says in cases:
        for force in ([], ["--force"]):
            result = invoke(["--config-dir", str(REPO), "--db", str(db), *REPORT_ARGS, "--report", path, *force])
            assert result.exit_code == 2, (path, force, result.output)
            assert says in result.stderr and result.stderr.count("\n") == 1, (path, result.stderr)
    assert db.read_bytes() == before and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not (work / "nowhere").exists()
    # a journal the run itself creates at the report's path is refused too, before the run
    fresh = work / "fresh.db"
    result = invoke(["--config-dir", str(REPO), "--db", str(fresh), *REPORT_ARGS, "--report", str(fresh)])
    assert result.exit_code == 2 and not fresh.exists()


@pytest.mark.timeout(120)
def test_backtest_report_replaces_an_existing_file_only_with_force_and_atomically(journal, tmp_path):
    report = tmp_path / "report.html"
    report.write_text("an older report")
    base = ["--config-dir", str(REPO), "--db", str(tmp_path / "botctl.db"), *REPORT_ARGS, "--no-journal", "--report", str(report)]
    refused = invoke(base)
    assert refused.exit_code == 2 and "exists; add --force to replace it" in refused.stderr
    assert report.read_text() == "an older report"
    replaced = invoke([*base, "--force"])
    assert replaced.exit_code == 0, replaced.output
    assert report.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left beside it


# --- journals this user may read but not write --------------------------------------------------


def _as_someone_else(argv: list[str]) -> list[str]:
    """Root reads everything: the permission cases run as `nobody` then."""
    if os.geteuid() != 0:
        return argv
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to drop privileges")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


@pytest.fixture
def shared_dir():
    folder = Path(tempfile.mkdtemp(prefix="botctl-ro-"))
    folder.chmod(0o755)
    yield folder
    for path in (folder, *folder.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(folder)


def _status(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_as_someone_else([sys.executable, "-m", "botctl", "--config-dir", str(REPO), "--db", str(db),
                                            "status", "--json"]),
                          env=clean_env(), capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(60)
def test_status_reads_a_journal_in_a_read_only_folder(journal, shared_dir):
    folder = shared_dir / "ro"
    folder.mkdir()
    db = folder / "botctl.db"
    db.write_bytes(journal.read_bytes())  # a WAL journal: reading it normally needs a -shm file beside it
    db.chmod(0o444)
    folder.chmod(0o555)
    proc = _status(db)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["accounts"]) == {"rotation-sim", "adaptive-sim", "signals-sim"}
    assert sorted(p.name for p in folder.iterdir()) == ["botctl.db"]


@pytest.mark.timeout(60)
def test_a_read_only_folder_with_pending_wal_content_says_so_in_one_line(journal, shared_dir, tmp_path):
    live = tmp_path / "botctl.db"
    live.write_bytes(journal.read_bytes())
    conn = sqlite3.connect(live)
    try:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("UPDATE runs SET note = 'pending' WHERE rowid = 1")
        conn.commit()
        folder = shared_dir / "ro"
        folder.mkdir()
        for name in ("botctl.db", "botctl.db-wal"):  # copied without its -shm, as a backup would be
            (folder / name).write_bytes((tmp_path / name).read_bytes())
            (folder / name).chmod(0o444)
    finally:
        conn.close()
    folder.chmod(0o555)
    proc = _status(folder / "botctl.db")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: cannot read {folder / 'botctl.db'}: its folder is not writable by this user and the newest writes "
        "are still in botctl.db-wal, which SQLite can only read with a botctl.db-shm file it must create there; "
        "run as the bot's user or make the folder writable"]
    assert json.loads(proc.stdout)["exit_code"] == 1


@pytest.mark.timeout(60)
def test_an_unreadable_journal_is_one_line(journal, shared_dir):
    db = shared_dir / "botctl.db"
    db.write_bytes(journal.read_bytes())
    db.chmod(0o000)
    proc = _status(db)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"error: cannot read the journal {db}: permission denied"]
