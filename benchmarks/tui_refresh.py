"""Dashboard refresh: journal query time per refresh on a journal of 1,000,000 orders.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/tui_refresh.py [JOURNAL]

Without JOURNAL it uses (and if needed builds) the journal of benchmarks/status_speed.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from botctl.tui.data import measure_refresh

    if len(sys.argv) > 1:
        journal = Path(sys.argv[1])
    else:
        import tempfile

        import status_speed

        journal = Path(tempfile.gettempdir()) / "botctl-status-bench" / "journal.db"
        status_speed.build_journal(journal, rebuild=False)
    for account in ("rotation-sim", "adaptive-sim"):
        measure_refresh(journal, ROOT, account=account)


if __name__ == "__main__":
    main()
