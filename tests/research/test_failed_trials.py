"""A trial that cannot run is recorded as failed with its reason, and the sweep goes on."""

from __future__ import annotations

from datetime import date

import msgspec

from botctl.research.grid import Grid
from botctl.research.prepare import prepare
from botctl.research.run import run_sweep
from botctl.research.sweep import Constraints
from botctl.store import Store
from tests.research.support import LOOKBACK


def test_failed_trial_is_recorded_and_the_others_run(config_dir, tmp_path):
    prep = prepare(config_dir, None, [f"{LOOKBACK}=63,126"], [], model=None,
                   start=date(2019, 1, 1), end=date(2019, 12, 31))
    # A value the up-front check would refuse, slipped in to make one trial fail at run time.
    prep = msgspec.structs.replace(prep, grid=Grid([(LOOKBACK, [63, -3, 126])]))
    journal = tmp_path / "research.db"
    for workers in (1, 2):
        out = run_sweep(prep, journal, samples=None, seed=0, objective="sharpe", constraints=Constraints(),
                        workers=workers, fresh=True)
        by = {t["params"][LOOKBACK]: t for t in out["trials"]}
        assert by[-3]["status"] == "failed" and "lookback_days" in by[-3]["reason"]
        assert by[-3]["metrics"] is None and by[-3]["deflated_sharpe"] is None and by[-3]["rank"] is None
        assert by[63]["status"] == by[126]["status"] == "ok"
        assert out["counts"] == {"trials": 3, "ok": 2, "failed": 1, "meeting_constraints": 2, "resumed": 0}
        assert out["trials"][-1]["status"] == "failed"  # failed trials rank last
        with Store.open(journal, readonly=True, create=False) as store:
            rows = store.trials(out["run_id"])
        assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok"]
        assert next(r for r in rows if r["status"] == "failed")["reason"] == by[-3]["reason"]
