"""The shipped example signal file: made deterministically by its script, read without a
refused row, and turned into scores over the bundled bars' sessions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from botctl.adapters.file_data import available_symbols, load_bars
from botctl.feeds.pointintime import external_scores
from botctl.feeds.runner import load_signals
from botctl.feeds.timing import decision_times
from botctl.spec.feeds import load_feeds
from botctl.strategy.bars import bars_from_frame

ROOT = Path(__file__).resolve().parents[2]
FEEDS = """\
kinds:
  flow: {weight: 0.7, latency_seconds: 300}
  insider: {weight: 0.3}
sources:
  example: {type: file, path: "bundled:example_signals.csv"}
"""


def test_the_example_is_what_its_script_writes(tmp_path: Path):
    shipped = (ROOT / "botctl" / "data" / "example_signals.csv").read_bytes()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example_signals.py")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (ROOT / "botctl" / "data" / "example_signals.csv").read_bytes() == shipped


def test_the_example_backtests_over_the_bundled_bars(tmp_path: Path):
    config = load_feeds(FEEDS, environ=None, known_symbols=available_symbols(None))
    signals, modes, refused = load_signals(config, tmp_path, None, known_symbols=available_symbols(None))
    assert refused == [] and len(signals) == 1408 and modes == {"example": "declared"}
    symbols = ("XLK", "XLE", "SPY")
    bars = bars_from_frame(load_bars(None), symbols)
    rows = [i for i, d in enumerate(bars.dates) if d.year == 2024]
    times = decision_times([bars.dates[i] for i in rows], 30)
    scores = external_scores(signals, times, symbols, config.kinds, mode=modes)
    assert set(scores) == {"flow", "insider"}
    assert np.isfinite(scores["flow"][:, 0]).mean() > 0.95  # weekly, each good for a week
    assert np.isfinite(scores["insider"][:, 1]).all()  # monthly, no expiry, from before 2024
    assert np.isnan(scores["flow"][:, 2]).all()  # no signals for SPY
