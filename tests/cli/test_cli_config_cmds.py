"""`botctl validate`, `botctl plan` and the global options, through typer's CliRunner: exit codes,
what is printed where, and that no error ever shows a traceback."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from botctl import __version__
from botctl.cli.app import app

PROBLEM_LINE = re.compile(r"^(strategies|accounts)\.yaml:\d+:\d+: \S.*$")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner, config_dir, *args, **kwargs):
    result = runner.invoke(app, ["--config-dir", str(config_dir), *args], **kwargs)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def at(path, needle: str) -> str:
    """"FILE:LINE:COL" of the first occurrence of `needle` in a config file (1-based, like botctl)."""
    text = path.read_text()
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{path.name}:{line}:{col}"


def problem_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if not line.endswith("nothing was run")]


# validate -------------------------------------------------------------------------------------

def test_validate_accepts_the_shipped_config(runner, config_dir):
    result = invoke(runner, config_dir, "validate")
    assert result.exit_code == 0
    assert result.stdout.strip() == "ok: 5 strategies, 3 accounts"


def test_validate_prints_every_problem_in_both_files_and_exits_4(runner, config_dir):
    strategies = config_dir / "strategies.yaml"
    head, bull = strategies.read_text().split("SectorRotationBull_v1:")
    strategies.write_text(head + "SectorRotationBull_v1:" + bull.replace("universe: sectors_and_bonds", "universe: sectors", 1))
    accounts = config_dir / "accounts.yaml"
    accounts.write_text(accounts.read_text().replace("margin: 2.0", "margin: 9.0", 1).replace("budget: 1.0", "budget: 1.5", 1))
    result = invoke(runner, config_dir, "validate")
    assert result.exit_code == 4
    assert result.stdout == ""
    assert problem_lines(result) == [
        f"{at(accounts, 'margin: 9.0')}: accounts.rotation-sim.sim.margin: must be 1..4, got 9",
        f"{at(accounts, 'budget: 1.5')}: accounts.adaptive-sim.models[0].budget: "
        "a budget is a fraction of the account in (0, 1], got 1.5",
        f"{at(strategies, 'universe: sectors' + chr(10))}: strategies.SectorRotationBull_v1.universe: "
        "unknown universe 'sectors' (known: sectors_and_bonds)",
    ]
    assert result.stderr.splitlines()[-1] == "3 problem(s) in the config; nothing was run"


def test_validate_checks_symbols_against_the_market_data(runner, config_dir):
    strategies = config_dir / "strategies.yaml"
    strategies.write_text(strategies.read_text().replace("XLRE, TLT]", "XLRE, TLT, GLD]"))
    result = invoke(runner, config_dir, "validate")
    assert result.exit_code == 4
    assert problem_lines(result) == [
        f"{at(strategies, 'GLD')}: universes.sectors_and_bonds[12]: unknown symbol 'GLD' (not in the available market data, which holds: SPY, TLT, XLB, XLC, XLE, XLF, XLI, XLK, XLP, "
        "XLRE, XLU, XLV, XLY)"]


def test_validate_refuses_a_plaintext_key_without_echoing_it(runner, config_dir):
    secret = "PKLEAKLEAKLEAK1234567890"
    accounts = config_dir / "accounts.yaml"
    accounts.write_text(accounts.read_text().replace("    broker: sim\n", f"    broker: sim\n    api_key: {secret}\n", 1))
    result = invoke(runner, config_dir, "validate")
    assert result.exit_code == 4
    assert problem_lines(result) == [
        f"{at(accounts, 'api_key:')}: accounts.rotation-sim.api_key: plaintext keys are not allowed in config files; "
        "export the key as an environment variable and write `api_key_env: ALPACA_API_KEY` instead"]
    assert secret not in result.output


def test_validate_with_a_missing_config_dir_names_both_files(runner, tmp_path):
    result = invoke(runner, tmp_path / "nowhere", "validate")
    assert result.exit_code == 4
    lines = problem_lines(result)
    assert [line.split(":")[0] for line in lines] == ["accounts.yaml", "strategies.yaml"]
    assert all("no such file" in line and "--config-dir" in line for line in lines)


def test_validate_with_one_file_missing(runner, config_dir):
    (config_dir / "accounts.yaml").unlink()
    result = invoke(runner, config_dir, "validate")
    assert result.exit_code == 4
    assert len(problem_lines(result)) == 1
    assert problem_lines(result)[0].startswith("accounts.yaml:1:1: no such file in ")


def test_a_config_file_that_is_a_directory(runner, config_dir):
    (config_dir / "strategies.yaml").unlink()
    (config_dir / "strategies.yaml").mkdir()
    result = invoke(runner, config_dir, "validate")
    assert result.exit_code == 4
    assert problem_lines(result) == ["strategies.yaml:1:1: is a directory, not a file"]


def test_the_config_dir_can_come_from_the_environment(runner, config_dir):
    result = runner.invoke(app, ["validate"], env={"BOTCTL_CONFIG_DIR": str(config_dir)})
    assert result.exit_code == 0, result.output


def test_every_problem_line_has_the_documented_shape(runner, config_dir):
    (config_dir / "strategies.yaml").write_text("universes: {core: [SPY, 1]}\nstrategies:\n  M: {universe: x, steps: [nope]}\n")
    (config_dir / "accounts.yaml").write_text("accounts:\n  a: {models: [M, Q], mode: live, colour: 1}\n")
    result = invoke(runner, config_dir, "validate")
    assert result.exit_code == 4
    lines = problem_lines(result)
    assert len(lines) >= 5
    assert all(PROBLEM_LINE.match(line) for line in lines), lines


# plan -----------------------------------------------------------------------------------------

def test_plan_prints_accounts_models_budgets_universe_schedule_and_next_dates(runner, config_dir):
    result = invoke(runner, config_dir, "plan", "--as-of", "2024-05-15")
    assert result.exit_code == 0
    out = result.stdout
    assert re.match(r"plan [0-9a-f]{12}  \(benchmark SPY; next dates from 2024-05-15\)", out)
    assert "account rotation-sim: broker sim, mode paper" in out
    assert "account adaptive-sim: broker sim, mode paper" in out
    assert "  symbols: SPY TLT XLB XLC XLE XLF XLI XLK XLP XLRE XLU XLV XLY" in out
    assert out.count("budget 33.3%") == 3
    assert "model SectorRotationAdaptive_v3: budget 100.0%" in out
    assert "rebalance: 1st session of each month, 30 min after the open" in out
    # June 1st 2024 is a Saturday: the first session of June is Monday the 3rd.
    assert out.count("next: 2024-06-03, 2024-07-01, 2024-08-01") == 4


def test_plan_json_is_one_parseable_object(runner, config_dir):
    result = invoke(runner, config_dir, "plan", "--json", "--as-of", "2024-05-15")
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert re.fullmatch(r"[0-9a-f]{12}", body["plan_id"])
    accounts = {a["id"]: a for a in body["accounts"]}
    rotation = accounts["rotation-sim"]
    assert (rotation["broker"], rotation["mode"]) == ("sim", "paper")
    assert [m["name"] for m in rotation["models"]] == [
        "SectorRotationModel_v1", "SectorRotationBull_v1", "SectorRotationBear_v1"]
    assert [m["budget"] for m in rotation["models"]] == pytest.approx([1 / 3] * 3)
    assert "SPY" in rotation["symbols"] and "TLT" in rotation["symbols"]
    model = rotation["models"][0]
    assert model["schedule"] == {"every": "monthly", "day": 1, "after_open_minutes": 30}
    assert model["next_rebalances"] == ["2024-06-03", "2024-07-01", "2024-08-01"]
    assert model["steps"][0] == {"step": "select_momentum", "lookback_days": 126, "top": 3, "min_return": 0.0}


def test_plan_id_is_stable_and_follows_the_inputs(runner, config_dir):
    def plan_id() -> str:
        return json.loads(invoke(runner, config_dir, "plan", "--json", "--as-of", "2024-05-15").stdout)["plan_id"]

    first = plan_id()
    assert plan_id() == first
    # The as-of date moves the next dates, not the plan.
    assert json.loads(invoke(runner, config_dir, "plan", "--json", "--as-of", "2024-09-02").stdout)["plan_id"] == first
    accounts = config_dir / "accounts.yaml"
    accounts.write_text(accounts.read_text().replace("slippage_bps: 2", "slippage_bps: 3", 1))
    assert plan_id() != first


def test_plan_model_filter_redistributes_the_budget(runner, config_dir):
    result = invoke(runner, config_dir, "plan", "--json", "--as-of", "2024-05-15",
                    "--model", "SectorRotationBull_v1", "--model", "SectorRotationBear_v1")
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert [a["id"] for a in body["accounts"]] == ["rotation-sim"]
    assert [(m["name"], m["budget"]) for m in body["accounts"][0]["models"]] == [
        ("SectorRotationBull_v1", pytest.approx(0.5)), ("SectorRotationBear_v1", pytest.approx(0.5))]


def test_plan_account_filter(runner, config_dir):
    result = invoke(runner, config_dir, "plan", "--account", "adaptive-sim", "--as-of", "2024-05-15")
    assert result.exit_code == 0
    assert "account adaptive-sim" in result.stdout and "rotation-sim" not in result.stdout


def test_plan_next_dates_follow_the_exchange_calendar(runner, config_dir):
    (config_dir / "strategies.yaml").write_text(
        "universes: {u: [SPY]}\nstrategies:\n"
        "  D: {universe: u, rebalance: daily, steps: [select_all]}\n"
        "  W: {universe: u, rebalance: weekly, steps: [select_all]}\n"
        "  Q: {universe: u, rebalance: quarterly, steps: [select_all]}\n"
        "  M: {universe: u, rebalance: {every: monthly, day: 3}, steps: [select_all]}\n")
    (config_dir / "accounts.yaml").write_text("accounts:\n  a: {models: [D, W, Q, M]}\n")
    result = invoke(runner, config_dir, "plan", "--json", "--as-of", "2024-07-03")
    assert result.exit_code == 0, result.output
    dates = {m["name"]: m["next_rebalances"] for m in json.loads(result.stdout)["accounts"][0]["models"]}
    assert dates == {
        "D": ["2024-07-03", "2024-07-05", "2024-07-08"],  # Independence Day is closed
        "W": ["2024-07-08", "2024-07-15", "2024-07-22"],
        "Q": ["2024-10-01", "2025-01-02", "2025-04-01"],  # New Year's Day is closed
        "M": ["2024-07-03", "2024-08-05", "2024-09-05"],  # as-of day itself counts
    }


def test_plan_with_an_unknown_model_is_a_usage_error(runner, config_dir):
    result = invoke(runner, config_dir, "plan", "--model", "NoSuchModel")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown model 'NoSuchModel'")
    assert result.stdout == ""


def test_plan_with_an_unknown_account_is_a_usage_error(runner, config_dir):
    result = invoke(runner, config_dir, "plan", "--account", "nobody")
    assert result.exit_code == 2
    assert "unknown account 'nobody'" in result.stderr


def test_plan_with_a_bad_date_is_a_usage_error(runner, config_dir):
    result = invoke(runner, config_dir, "plan", "--as-of", "2024-13-01")
    assert result.exit_code == 2
    assert "--as-of expects a date" in result.stderr


def test_plan_refuses_an_invalid_config_with_exit_4(runner, config_dir):
    accounts = config_dir / "accounts.yaml"
    accounts.write_text(accounts.read_text().replace("SectorRotationBear_v1]", "SectorRotationBear_v2]"))
    result = invoke(runner, config_dir, "plan", "--json")
    assert result.exit_code == 4
    expected = [
        f"{at(accounts, 'SectorRotationBear_v2')}: accounts.rotation-sim.models[2]: unknown model 'SectorRotationBear_v2' "
        "(defined in strategies.yaml: SectorBreakoutBook_v1, SectorRotationAdaptive_v3, SectorRotationBear_v1, SectorRotationBull_v1, "
        "SectorRotationModel_v1)"]
    assert problem_lines(result) == expected
    # --json: the error is also one JSON object on stdout, for scripts that parse it
    assert json.loads(result.stdout) == {"error": "1 problem(s) in the config; nothing was run", "exit_code": 4,
                                         "problems": expected}


def test_plan_with_a_missing_config_dir_exits_4(runner, tmp_path):
    assert invoke(runner, tmp_path / "nowhere", "plan").exit_code == 4


def test_plan_shows_where_alpaca_keys_come_from(runner, config_dir):
    accounts = config_dir / "accounts.yaml"
    accounts.write_text(accounts.read_text().replace(
        "health:", "  paper:\n    broker: alpaca\n    api_key_env: MY_KEY\n    models: [SectorRotationAdaptive_v3]\n\nhealth:"))
    result = invoke(runner, config_dir, "plan", "--account", "paper", "--as-of", "2024-05-15")
    assert result.exit_code == 0, result.output
    assert "account paper: broker alpaca, mode paper, data file, keys from $MY_KEY / $ALPACA_SECRET_KEY" in result.stdout


# Global options -------------------------------------------------------------------------------

def test_version(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"botctl {__version__}"


def test_an_unknown_option_is_a_usage_error(runner, config_dir):
    result = runner.invoke(app, ["--no-such-option", "validate"])
    assert result.exit_code == 2
    assert "No such option" in result.output and "Traceback" not in result.output




# Bugs -----------------------------------------------------------------------------------------

def test_a_tagged_plaintext_key_is_refused_without_echoing_it(runner, config_dir):
    secret = "PKLEAKLEAKLEAK1234567890"
    accounts = config_dir / "accounts.yaml"
    accounts.write_text(accounts.read_text().replace("    broker: sim\n", f"    broker: sim\n    api_key: !!bool {secret}\n", 1))
    result = invoke(runner, config_dir, "validate")
    assert secret.lower() not in result.output.lower()
    assert result.exit_code == 4


def test_an_unpaired_surrogate_escape_is_a_config_error(runner, config_dir):
    accounts = config_dir / "accounts.yaml"
    accounts.write_text(accounts.read_text().replace("mode: paper", 'mode: "\\ud800"', 1))
    result = invoke(runner, config_dir, "validate")
    assert result.exit_code == 4



@pytest.mark.parametrize("args", [["plan", "--yaml"], ["frobnicate"], ["plan", "--as-of"]],
                         ids=["unknown-command-option", "unknown-command", "option-missing-its-value"])
def test_usage_errors_while_parsing_a_command_exit_2(runner, config_dir, args):
    result = invoke(runner, config_dir, *args)
    assert "internal error" not in result.output
    assert result.exit_code == 2


def test_a_command_exiting_with_typer_exit_keeps_its_code(runner):
    import typer

    from botctl.cli.app import BotctlGroup

    probe = typer.Typer(cls=BotctlGroup)

    @probe.command()
    def stop() -> None:
        raise typer.Exit(3)

    @probe.command()
    def other() -> None:
        pass

    result = runner.invoke(probe, ["stop"])
    assert "internal error" not in result.output
    assert result.exit_code == 3


def test_control_characters_from_the_file_are_escaped_in_problems(runner, config_dir):
    (config_dir / "accounts.yaml").write_text(
        'accounts:\n'
        '  main:\n'
        '    models: [SectorRotationModel_v1]\n'
        '    "x\\e[2Jy": 1\n'
        '  spare:\n'
        '    models: ["Evil\\nName"]\n')
    result = invoke(runner, config_dir, "validate", color=True)  # as on a terminal: click keeps escapes
    assert result.exit_code == 4
    assert "\x1b" not in result.stderr
    assert len(result.stderr.splitlines()) == 3  # two problems and the summary, one line each
