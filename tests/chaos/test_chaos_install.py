"""`install.sh` without a package index: one line, exit 1, and no half-built `.venv` left
behind to look installed (before: pip's multi-line error and a `.venv` without botctl)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from chaos_support import REPO


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_offline_install_fails_in_one_line_and_leaves_no_venv(tmp_path):
    for name in ("install.sh", "constraints.txt", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "botctl", tmp_path / "botctl", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    # an index nobody listens on, no local wheels, no retries, nothing from a pip config file
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_RETRIES="0",
               PIP_FIND_LINKS="", PIP_NO_CACHE_DIR="1", TMPDIR=str(tmp_path))
    result = subprocess.run(["bash", str(tmp_path / "install.sh")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=200)
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert "failed: the package index is unreachable" in result.stderr and ".venv removed" in result.stderr
    assert not (tmp_path / ".venv").exists()
    assert [ln.split("]")[0] for ln in result.stdout.splitlines()] == ["install.sh: [1/4", "install.sh: [2/4"]
    log = result.stderr.rsplit("pip's output: ", 1)[1].strip()
    assert os.path.exists(log) and os.path.dirname(log) == str(tmp_path)
