"""The same trials through a real Dask LocalCluster (loopback) give the local pool's results."""

from __future__ import annotations

from datetime import date

import pytest

from botctl.research.prepare import prepare
from botctl.research.run import run_sweep
from botctl.research.sweep import Constraints
from tests.research.support import LOOKBACK, TOP

distributed = pytest.importorskip("distributed")


def test_cluster_results_are_identical_to_the_local_pool(config_dir, tmp_path):
    prep = prepare(config_dir, None, [f"{LOOKBACK}=63,126,252", f"{TOP}=2,3"], [], model=None,
                   start=date(2019, 1, 1), end=date(2020, 6, 30))
    kwargs = dict(samples=None, seed=0, objective="sharpe", constraints=Constraints(max_drawdown=-0.3))
    pool = run_sweep(prep, tmp_path / "pool.db", workers=2, **kwargs)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = run_sweep(prep, tmp_path / "dask.db", cluster=cluster.scheduler_address, **kwargs)
    assert remote["run_id"] == pool["run_id"]  # the same sweep, whoever runs it
    assert remote["counts"] == pool["counts"] and remote["counts"]["ok"] == 6
    assert remote["trials"] == pool["trials"]


def test_walkforward_on_the_cluster_matches_the_pool(config_dir, tmp_path):
    from botctl.research.walkforward import run_walkforward

    prep = prepare(config_dir, None, [f"{LOOKBACK}=63,252"], [], model=None,
                   start=date(2017, 1, 1), end=date(2019, 12, 31))
    kwargs = dict(train="2y", test="6m", anchored=True, samples=None, seed=0, objective="sharpe",
                  constraints=Constraints())
    pool = run_walkforward(prep, tmp_path / "pool.db", workers=2, **kwargs)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = run_walkforward(prep, tmp_path / "dask.db", cluster=cluster.scheduler_address, **kwargs)
    assert len(pool["windows"]) == 2 and remote["windows"] == pool["windows"]
    assert remote["out_of_sample"] == pool["out_of_sample"] and remote["shipped"] == pool["shipped"]
