"""The journal of a research run: the run row in the backtests journal, one row per finished
trial written as it finishes (so a killed run loses at most the trials in flight), and the
progress line a person sees meanwhile."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import msgspec

from botctl.errors import UsageError
from botctl.records import Run
from botctl.research.execute import Job
from botctl.research.grid import trial_key
from botctl.research.trials import Outcome

if TYPE_CHECKING:
    from botctl.store import Store


def begin(store: Store, run_id: str, plan_id: str, note: str, period: tuple[str | None, str | None],
          *, resume: str | None) -> dict[tuple[str, str], Outcome]:
    """Open (or reopen) the run; returns the trials it already finished, by (window, key).
    `resume` is a run id the user asked to resume: it must be this very run."""
    if resume is not None and resume != run_id:
        if store.get_run(resume) is None:
            raise UsageError(f"--resume {resume}: no such run in {store.path} (see `botctl --db {store.path} runs`)")
        raise UsageError(f"--resume {resume}: that run computed something else (config, data, period or trials "
                         f"differ; this one is {run_id})")
    existing = store.get_run(run_id)
    now = datetime.now(timezone.utc)
    run = Run(run_id=run_id, kind="backtest", plan_id=plan_id, started_at=existing.started_at if existing else now,
              status="running", pid=os.getpid(), period_start=period[0], period_end=period[1], note=note)
    store.upsert_run(run)
    done: dict[tuple[str, str], Outcome] = {}
    for row in store.trials(run_id) if existing else []:
        done[(row["window"], row["trial_key"])] = Outcome(
            params=json.loads(row["params"]), status=row["status"],
            metrics=json.loads(row["metrics"]) if row["metrics"] else None,
            stats=json.loads(row["stats"]) if row["stats"] else None, reason=row["reason"])
    return done


def record(store: Store, run_id: str, job: Job, outcome: Outcome) -> None:
    store.put_trial(run_id, job.window, trial_key(job.params), json.dumps(job.params), outcome.status,
                    metrics=json.dumps(outcome.metrics) if outcome.metrics is not None else None,
                    stats=json.dumps(outcome.stats) if outcome.stats is not None else None,
                    reason=outcome.reason, ts=datetime.now(timezone.utc))


def finish(store: Store, run_id: str, status: str = "finished") -> None:
    run = store.get_run(run_id)
    if run is not None:
        store.upsert_run(msgspec.structs.replace(run, status=status, ended_at=datetime.now(timezone.utc)))


class Progress:
    """Trials done, the best objective so far and the ETA, on stderr; silent when stderr is not
    a terminal or output is JSON."""

    def __init__(self, total: int, objective: str, *, enabled: bool) -> None:
        self.total, self.objective, self.done = total, objective, 0
        self.best: float | None = None
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self._bar: Any = None
        if self.enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            # stderr: stdout is the table (or what a pipe reads)
            self._bar = Bar(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                            TextColumn("ETA"), TimeRemainingColumn(), transient=True, console=Console(stderr=True))
            self._task = self._bar.add_task(self._text(), total=total)
            self._bar.start()

    def _text(self) -> str:
        return f"best {self.objective} {self.best:.3f}" if self.best is not None else f"best {self.objective} -"

    def step(self, value: float | None) -> None:
        self.done += 1
        if value is not None and (self.best is None or value > self.best):
            self.best = value
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=self._text())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def recorder(store: Store, run_id: str, progress: Progress, score: Callable[[Outcome], float | None],
             sink: dict[tuple[str, str], Outcome]) -> Callable[[Job, Outcome], None]:
    """The `done` callback of execute.run_jobs: journal, keep, and advance the progress bar."""
    def done(job: Job, outcome: Outcome) -> None:
        record(store, run_id, job, outcome)
        sink[(job.window, trial_key(job.params))] = outcome
        progress.step(score(outcome))
    return done
