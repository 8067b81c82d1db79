"""Golden snapshot of the shipped plan on the bundled data, 2015-01-01..2024-12-31.

A change in any figure means the engine's behaviour changed. If that is intended, regenerate with
    BOTCTL_UPDATE_GOLDEN=1 .venv/bin/pytest tests/engine/test_engine_golden.py
and review the diff of golden/backtest_2015_2024.json.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from botctl.runtime.backtest import run_backtest, summary

GOLDEN = Path(__file__).parent / "golden" / "backtest_2015_2024.json"
FIGURES = ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "turnover", "trades")
TOLERANCE = 1e-6


def snapshot(result_summary: dict) -> dict:
    out: dict = {"start": result_summary["start"], "end": result_summary["end"]}
    for kind in ("accounts", "models"):
        out[kind] = {
            name: {k: (v if k == "trades" or v is None else round(v, 6)) for k, v in metrics.items() if k in FIGURES}
            for name, metrics in sorted(result_summary[kind].items())
        }
    return out


@pytest.fixture(scope="module")
def current(plan, bundled_bars):
    return snapshot(summary(run_backtest(plan, bundled_bars, start=date(2015, 1, 1), end=date(2024, 12, 31))))


def test_backtest_summary_matches_the_golden_snapshot(current):
    if os.environ.get("BOTCTL_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"rewrote {GOLDEN.name}")
    golden = json.loads(GOLDEN.read_text())
    assert (current["start"], current["end"]) == (golden["start"], golden["end"])
    for kind in ("accounts", "models"):
        assert sorted(current[kind]) == sorted(golden[kind]), kind
        for name, figures in golden[kind].items():
            assert sorted(current[kind][name]) == sorted(FIGURES), name
            for key, expected in figures.items():
                got = current[kind][name][key]
                if key == "trades" or expected is None:
                    assert got == expected, (kind, name, key)
                else:
                    assert got == pytest.approx(expected, abs=TOLERANCE), (kind, name, key)
