"""The chaos suite: failure and bad-input tests in one place, seeded and bounded in time.

Every test here is marked `chaos` (select with `-m chaos`, leave out with `-m "not chaos"`)
and has its own timeout. Counts are small for CI; scripts/chaos_long.py runs the long
version with the same helpers (chaos_support.py) and prints the figures.

Knobs (environment):
  BOTCTL_CHAOS_SEED            base seed of every random choice (default 20240301)
  BOTCTL_CHAOS_CRASH_ROUNDS    SIGKILL rounds of test_chaos_crash (default 5)
  BOTCTL_CHAOS_FAULT_SESSIONS  sessions of the faulted scheduled loop (default 6)
  BOTCTL_CHAOS_FAULT_RATE      probability of a fault per broker request (default 0.25)
  BOTCTL_CHAOS_FUZZ_SCALE      multiplies the Hypothesis examples of the bad-input properties (default 1)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

SEED = int(os.environ.get("BOTCTL_CHAOS_SEED", "20240301"))
# The whole of tests/chaos should stay under this on the project's 2-core machines.
BUDGET_SECONDS = 300.0

_durations: dict[str, float] = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: failure-injection and bad-input tests (tests/chaos)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.chaos)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started = time.monotonic()
    yield
    if HERE in Path(str(item.fspath)).resolve().parents:
        _durations[item.nodeid] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _durations:
        return
    total = sum(_durations.values())
    terminalreporter.write_sep("-", f"chaos suite: {len(_durations)} tests in {total:.1f}s "
                                    f"(budget {BUDGET_SECONDS:.0f}s)")
    for nodeid, seconds in sorted(_durations.items(), key=lambda kv: -kv[1])[:8]:
        terminalreporter.write_line(f"  {seconds:6.1f}s  {nodeid}")
    if total > BUDGET_SECONDS:
        terminalreporter.write_line(f"WARNING: tests/chaos took {total:.0f}s, over its {BUDGET_SECONDS:.0f}s budget")


@pytest.fixture
def seed(request) -> int:
    """A per-test seed: the base seed mixed with the test's name, so tests do not share draws
    and each one replays exactly with the same BOTCTL_CHAOS_SEED."""
    import zlib

    return SEED ^ zlib.crc32(request.node.name.encode())
