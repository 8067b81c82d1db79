"""`botctl service unit` prints a systemd unit that runs the same `botctl run` as the Dockerfile."""

from __future__ import annotations

import configparser
from pathlib import Path

from typer.testing import CliRunner

from botctl.cli.app import app


def unit(tmp_path: Path, *args: str) -> configparser.ConfigParser:
    result = CliRunner().invoke(app, ["--config-dir", str(tmp_path), "--db", str(tmp_path / "j.db"), "service", "unit", *args])
    assert result.exit_code == 0, result.output
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string("\n".join(line for line in result.stdout.splitlines() if not line.startswith("#")))
    return parser


def test_the_unit_runs_botctl_run_with_the_config_and_database(tmp_path):
    service = unit(tmp_path)["Service"]
    assert service["ExecStart"].endswith(f"--config-dir {tmp_path} --db {tmp_path / 'j.db'} run")
    assert service["WorkingDirectory"] == str(tmp_path)
    assert service["EnvironmentFile"] == f"-{tmp_path / 'botctl.env'}"
    assert service["Restart"] == "on-failure" and int(service["RestartSec"]) > 0
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) >= 60
    assert str(tmp_path) in service["ReadWritePaths"]


def test_user_units_install_into_the_default_target(tmp_path):
    assert unit(tmp_path, "--user")["Install"]["WantedBy"] == "default.target"
    assert unit(tmp_path)["Install"]["WantedBy"] == "multi-user.target"


def test_the_dockerfile_runs_the_same_command():
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["botctl"]' in dockerfile and 'CMD ["run"]' in dockerfile
