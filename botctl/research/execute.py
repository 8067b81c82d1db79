"""Where trials run: in this process, in a local process pool across the cores, or on a Dask
distributed cluster. The three give identical outcomes for identical jobs (a trial is a pure
function of its setup, bars and parameters); only the wall time differs.

The setup and the bars go to each worker once: as the pool's initializer arguments, or
scattered to every Dask worker (`broadcast=True`) and passed to the tasks as futures, which
Dask resolves to the worker's in-memory copy. Scheduling, transport and retries are Dask's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any

import msgspec

from botctl.errors import BotctlError, UsageError
from botctl.research.grid import Params
from botctl.research.trials import Outcome, Setup, init_worker, run_in_worker, run_trial
from botctl.strategy.bars import Bars


class Job(msgspec.Struct, frozen=True):
    """One trial to run: its parameters and period; `window` labels a walk-forward window."""

    params: dict[str, Any]
    window: str = ""
    start: date | None = None
    end: date | None = None
    keep_curve: bool = False  # return the NAV curve too (walk-forward test windows)


Done = Callable[[Job, Outcome], None]


class ClusterUnreachable(BotctlError):
    """The Dask scheduler did not answer."""


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run_jobs(setup: Setup, bars: Bars, jobs: Iterable[Job], done: Done, *, workers: int = 1,
             cluster: str | None = None) -> None:
    """Run every job, calling `done(job, outcome)` in this process as each one finishes (in
    completion order, not submission order)."""
    if cluster is not None:
        _run_dask(setup, bars, jobs, done, cluster)
    elif workers <= 1:
        for job in jobs:
            done(job, run_trial(setup, bars, job.params, start=job.start, end=job.end, keep_curve=job.keep_curve))
    else:
        _run_pool(setup, bars, jobs, done, workers)


def _windowed(jobs: Iterable[Job], submit: Callable[[Job], Any], wait_one: Callable[[set], Iterator[Any]],
              depth: int, done: Done, outcome_of: Callable[[Any], Outcome]) -> None:
    """Keep at most `depth` jobs in flight, so a huge sweep never holds every future at once."""
    pending: dict[Any, Job] = {}
    source = iter(jobs)
    exhausted = False
    while True:
        while not exhausted and len(pending) < depth:
            job = next(source, None)
            if job is None:
                exhausted = True
                break
            pending[submit(job)] = job
        if not pending:
            return
        for future in wait_one(set(pending)):
            done(pending.pop(future), outcome_of(future))


def _run_pool(setup: Setup, bars: Bars, jobs: Iterable[Job], done: Done, workers: int) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    def wait_one(pending: set) -> Iterator[Any]:
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        return iter(finished)

    import multiprocessing

    # forkserver, not fork: a fork of a process whose polars/numpy threads hold a lock
    # deadlocks in the child; a worker starts clean and gets the setup and bars once.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                             initargs=(setup, bars)) as pool:
        try:
            _windowed(jobs, lambda j: pool.submit(run_in_worker, j.params, j.start, j.end, j.keep_curve), wait_one,
                      workers * 4, done, lambda f: f.result())
        except BrokenProcessPool:
            raise BotctlError("a trial worker process died (out of memory?); finished trials are journaled, "
                              "run the same command again to resume") from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def connect(address: str):
    """A dask.distributed Client for the scheduler at `address`; one-line errors otherwise."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise UsageError("--cluster needs dask.distributed: pip install 'botctl[cluster]'") from None
    if "://" not in address:
        raise UsageError(f"--cluster {address!r}: expected a scheduler address like tcp://host:8786")
    try:
        return Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ClusterUnreachable(f"cannot reach the Dask scheduler at {address}: {reason[:200]}") from None
    except ValueError as exc:
        raise UsageError(f"--cluster {address!r}: {exc}") from None


def _run_dask(setup: Setup, bars: Bars, jobs: Iterable[Job], done: Done, address: str) -> None:
    from dask.distributed import as_completed

    client = connect(address)
    try:
        depth = 8 * max(1, len(client.scheduler_info().get("workers", {})))
        setup_future = client.scatter(setup, broadcast=True, hash=False)
        bars_future = client.scatter(bars, broadcast=True, hash=False)
        source = iter(jobs)
        pending: dict[Any, Job] = {}

        def submit_next() -> None:
            job = next(source, None)
            if job is not None:
                future = client.submit(run_trial, setup_future, bars_future, job.params, start=job.start,
                                       end=job.end, keep_curve=job.keep_curve, pure=False)
                pending[future] = job
                flow.add(future)

        with client.as_current():  # as_completed finds its client here (this one is not the default)
            flow = as_completed([])
            for _ in range(depth):  # at most `depth` trials in flight: a huge sweep holds no future for each
                submit_next()
            for future in flow:
                done(pending.pop(future), future.result())
                submit_next()
    finally:
        client.close()
