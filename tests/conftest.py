from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped strategies.yaml and accounts.yaml, free to edit."""
    folder = tmp_path / "config"
    folder.mkdir()
    for name in ("strategies.yaml", "accounts.yaml"):
        shutil.copy(REPO_ROOT / name, folder / name)
    return folder


@pytest.fixture(autouse=True, scope="session")
def _no_default_health_port():
    """Runs started by tests (in-process or as subprocesses) serve no health endpoint unless a
    test asks for one with --health-port: the shipped port may be taken on the machine."""
    import os

    previous = os.environ.get("BOTCTL_HEALTH_PORT")
    os.environ["BOTCTL_HEALTH_PORT"] = "0"
    yield
    if previous is None:
        os.environ.pop("BOTCTL_HEALTH_PORT", None)
    else:
        os.environ["BOTCTL_HEALTH_PORT"] = previous
