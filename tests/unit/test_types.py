"""The package type-checks: mypy with pyproject.toml's [tool.mypy] (strict on the pure core
and the account cycles, checked everywhere else) finds nothing, so the README's test command
and CI check types too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"


def mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(CONFIG), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=240)


def test_the_package_type_checks():
    result = mypy()  # the files and the cache directory (.mypy_cache) come from the config
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout, result.stdout + result.stderr


def test_the_core_is_checked_strictly_and_the_rest_is_not(tmp_path):
    # The same unannotated function in a strict module and in a non-strict one: only the
    # strict one is an error. (Guards the config itself: a per-module `strict = true` turns
    # strictness on everywhere, and a misspelt module pattern turns it on nowhere.)
    probe = "def double(x):\n    return x * 2\n"
    files = []
    for package in ("engine", "runtime", "cli"):
        (tmp_path / "botctl" / package).mkdir(parents=True)
        (tmp_path / "botctl" / package / "__init__.py").write_text("")
    (tmp_path / "botctl" / "__init__.py").write_text("")
    for module in ("engine/probe.py", "runtime/live.py", "cli/probe.py"):
        (tmp_path / "botctl" / module).write_text(probe)
        files.append(f"botctl/{module}")
    result = mypy("--cache-dir", str(tmp_path / "cache"), *files, cwd=tmp_path)
    flagged = {line.split(":")[0] for line in result.stdout.splitlines() if "[no-untyped-def]" in line}
    assert flagged == {"botctl/engine/probe.py", "botctl/runtime/live.py"}, result.stdout + result.stderr
