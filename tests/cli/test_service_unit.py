"""`botctl service unit` prints a systemd unit that runs the same `botctl run` as the Dockerfile."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from typer.testing import CliRunner

from botctl.cli.app import app


def unit_file(tmp_path: Path, *args: str, config: Path | None = None, db: Path | None = None,
              data: str | None = None, env: dict | None = None) -> str:
    """`botctl [globals] service unit ARGS`; the config folder defaults to tmp_path."""
    config = config or tmp_path
    options = ["--config-dir", str(config), "--db", str(db or config / "j.db"), *(["--data", data] if data else [])]
    result = CliRunner().invoke(app, [*options, "service", "unit", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys as systemd spells them
    parser.read_string("\n".join(line for line in text.splitlines() if not line.startswith("#")))
    return parser


def unit(tmp_path: Path, *args: str) -> configparser.ConfigParser:
    return parse(unit_file(tmp_path, *args))


def unquote(value: str) -> str:
    """Undo systemd's specifier escaping (%% -> %) after shell-like word splitting."""
    return value.replace("%%", "%").replace("$$", "$")


def test_the_unit_runs_botctl_run_with_the_config_and_database(tmp_path):
    service = unit(tmp_path)["Service"]
    assert shlex.split(service["ExecStart"])[1:] == ["--config-dir", str(tmp_path), "--db", str(tmp_path / "j.db"), "run",
                                                     "--cache-dir", str(tmp_path / "data-cache")]
    assert service["WorkingDirectory"] == str(tmp_path)
    assert service["EnvironmentFile"] == f"-{tmp_path / 'botctl.env'}"
    assert service["Restart"] == "on-failure" and int(service["RestartSec"]) > 0
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) >= 60
    assert str(tmp_path) in service["ReadWritePaths"]


def test_user_units_install_into_the_default_target(tmp_path):
    assert unit(tmp_path, "--user")["Install"]["WantedBy"] == "default.target"
    assert unit(tmp_path)["Install"]["WantedBy"] == "multi-user.target"


ROOT = Path(__file__).resolve().parents[2]


def test_the_dockerfile_runs_the_same_command():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["botctl"]' in dockerfile and 'CMD ["run"]' in dockerfile


def test_the_image_is_pinned_by_digest_and_installs_through_the_lock_file():
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(base) == 1 and re.fullmatch(r"FROM python:3\.11\.\d+-slim\S*@sha256:[0-9a-f]{64}", base[0]), base
    assert "RUN ./install.sh" in dockerfile
    install = (ROOT / "install.sh").read_text()
    assert install.count("-c constraints.txt") == 2  # pip itself, then botctl and its dependencies
    pins = [ln for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[^\s=]+", ln) for ln in pins), pins
    names = {ln.split("==")[0].lower().replace("_", "-") for ln in pins}
    assert {"alpaca-py", "polars", "textual", "prometheus-client", "pytest"} <= names
    assert "botctl" not in names


def test_the_image_leaves_out_keys_journals_and_caches():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in ("botctl.env", "*.env", "*.db", "*.db-wal", "data-cache", ".venv", ".git"):
        assert pattern in ignored, pattern


def test_a_config_folder_with_spaces_quotes_and_percent_signs_stays_one_argument_each(tmp_path):
    config = tmp_path / 'my "bot" 100%'
    config.mkdir()
    data = tmp_path / "bars folder"
    data.mkdir()
    text = unit_file(tmp_path, config=config, db=config / "the journal.db", data=str(data))
    parsed = parse(text)
    service = parsed["Service"]
    argv = [unquote(word) for word in shlex.split(service["ExecStart"])]
    assert argv[1:] == ["--config-dir", str(config), "--db", str(config / "the journal.db"), "--data", str(data), "run",
                        "--cache-dir", str(config / "data-cache")]
    assert unquote(service["WorkingDirectory"]) == str(config)
    assert [unquote(w) for w in shlex.split(service["ReadWritePaths"])] == sorted({str(config), str(config / "data-cache")})
    assert "100%%" in parsed["Unit"]["Description"] and " 100%%" in service["EnvironmentFile"]


def test_every_global_option_and_the_cache_folder_are_kept(tmp_path):
    cache = tmp_path / "elsewhere" / "cache"
    text = unit_file(tmp_path, db=tmp_path / "db" / "j.db", data="/srv/bars.parquet",
                     env={"BOTCTL_CACHE_DIR": str(cache)})
    service = parse(text)["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[argv.index("--data") + 1] == "/srv/bars.parquet"
    assert argv[argv.index("--db") + 1] == str(tmp_path / "db" / "j.db")
    assert argv[argv.index("--cache-dir") + 1] == str(cache)
    assert set(shlex.split(service["ReadWritePaths"])) == {str(tmp_path), str(tmp_path / "db"), str(cache)}


def test_the_system_unit_runs_as_a_dedicated_user_in_a_sandbox(tmp_path):
    service = unit(tmp_path)["Service"]
    assert service["User"] == service["Group"] == "botctl"
    assert service["CapabilityBoundingSet"] == "" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "yes"
    for key in ("PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                "RestrictNamespaces", "RestrictSUIDSGID", "LockPersonality"):
        assert service[key] == "yes", key
    assert service["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert "@system-service" in unit_file(tmp_path) and service["UMask"] == "0077"
    assert unit(tmp_path, "--run-as", "trader")["Service"]["User"] == "trader"
    assert "User" not in unit(tmp_path, "--user")["Service"]  # a user manager cannot switch users


def test_the_system_unit_gives_the_single_file_a_private_cache_to_unpack_into(tmp_path):
    """Under ProtectSystem=strict and ProtectHome=yes the self-extracting build would find no
    writable cache and unpack on every start: systemd makes it one, 0700, owned by the user."""
    service = unit(tmp_path)["Service"]
    assert service["CacheDirectory"] == "botctl" and service["CacheDirectoryMode"] == "0700"
    assert service["Environment"] == "XDG_CACHE_HOME=%C/botctl"


def test_a_folder_under_home_is_reachable_read_only_with_its_folders_writable(tmp_path):
    text = unit_file(tmp_path, config=Path("/home/someone/bot"))
    service = parse(text)["Service"]
    assert service["ProtectHome"] == "read-only" and "/home/someone/bot" in service["ReadWritePaths"]


@pytest.mark.parametrize("bad", ["root", "Bad Name", "x;rm", ""])
def test_run_as_refuses_root_and_odd_names(tmp_path, bad):
    result = CliRunner().invoke(app, ["--config-dir", str(tmp_path), "service", "unit", "--run-as", bad])
    assert result.exit_code == 2 and "--run-as expects a system user name" in result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_rates_the_system_unit_ok(tmp_path):
    path = tmp_path / "botctl.service"
    path.write_text(unit_file(tmp_path))
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(path)], capture_output=True, text=True,
                            timeout=60)
    last = (result.stdout.strip().splitlines() or [""])[-1]
    assert "Overall exposure level" in last and (" OK " in last or "SAFE" in last), result.stdout[-3000:]
