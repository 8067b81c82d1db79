"""`run --once` on data too old to trade: every order is blocked by the risk guard, so the
account could not trade and the command exits 1, as README says (before: "0 orders sent",
exit 0)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_once_on_stale_bundled_data_exits_1_naming_the_blocked_orders(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTCTL_", "ALPACA_"))}
    # a rebalance session a year after the bundled bars end, during market hours
    env["BOTCTL_CLOCK"] = "2026-12-01T15:00:00Z*1"
    result = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(tmp_path / "j.db"),
                             "run", "--once", "--yes"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result
    lines = [ln.strip() for ln in result.stdout.splitlines()[1:]]
    assert len(lines) == 3 and all(": not trading: all " in ln and "blocked by the risk guard" in ln
                                   and "days old" in ln and "NAV $" in ln for ln in lines), result.stdout
    assert "3 of 3 account(s) could not trade" in result.stderr and "Traceback" not in result.stderr
