"""What the research tests share: botctl as a real subprocess on a private config copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LOOKBACK = "SectorRotationModel_v1.select_momentum.lookback_days"
TOP = "SectorRotationModel_v1.select_momentum.top"
PERIOD = ("--start", "2019-01-01", "--end", "2020-12-31")


def botctl(config_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "BOTCTL_CONFIG_DIR": str(config_dir), "BOTCTL_DB": str(config_dir / "botctl.db")}
    done = subprocess.run([sys.executable, "-m", "botctl", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=config_dir)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def body(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
