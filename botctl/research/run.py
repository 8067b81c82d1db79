"""Running a sweep end to end: name it, resume what the journal already has, run the rest
where asked (one process, a local pool, a Dask cluster), journal each trial as it finishes,
and rank them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from botctl.research.execute import Job, run_jobs
from botctl.research.grid import check_size, trial_key
from botctl.research.prepare import Prepared
from botctl.research.record import Progress, begin, finish, recorder
from botctl.research.sweep import Constraints, identity, objective_value, ranked
from botctl.research.trials import Outcome


def run_missing(store, run_id: str, prep: Prepared, jobs: list[Job], done: dict[tuple[str, str], Outcome], *,
                objective: str, workers: int, cluster: str | None, progress: bool) -> None:
    """Run the jobs the journal does not have yet, journaling each into `done` as it finishes.
    An interruption leaves the run 'stopped' with every finished trial kept."""
    todo = [job for job in jobs if (job.window, trial_key(job.params)) not in done]
    bar = Progress(len(todo), objective, enabled=progress)

    def score(outcome: Outcome) -> float | None:
        return None if objective == "deflated_sharpe" else objective_value(outcome, objective, None)

    try:
        # No more processes than trials: starting a worker costs more than a trial.
        run_jobs(prep.setup, prep.bars, todo, recorder(store, run_id, bar, score, done),
                 workers=min(workers, len(todo)), cluster=cluster)
    except BaseException:
        finish(store, run_id, "stopped")
        raise
    finally:
        bar.close()


def run_sweep(prep: Prepared, journal: Path | str, *, samples: int | None, seed: int, objective: str,
              constraints: Constraints, yes: bool = False, workers: int = 1, cluster: str | None = None,
              resume: str | None = None, fresh: bool = False, progress: bool = False) -> dict[str, Any]:
    """The `sweep --json` object. The run id is the sweep's identity (config files, data,
    period, model, trials): the same sweep run again resumes; `fresh` starts a new run."""
    from botctl.research.backtest_api import session_rows
    from botctl.store import Store

    check_size(prep.grid, samples, yes=yes)
    trials = list(prep.grid.combinations(samples, seed))
    setup = prep.setup
    run_id = identity("sweep", setup, prep.bars, trials)
    if resume is not None and resume.startswith(run_id):
        run_id = resume  # a --fresh run of this same sweep
    elif fresh:
        run_id += f"-{uuid.uuid4().hex[:6]}"
    note = (f"sweep of {setup.model} in {setup.account}: {len(trials)} trial(s) over "
            f"{', '.join(path for path, _ in prep.grid.axes)}")
    first, last = session_rows(prep.bars, setup.start, setup.end)
    period = (prep.bars.dates[first].isoformat(), prep.bars.dates[last].isoformat())
    with Store.open(journal, durable=False) as store:
        done = begin(store, run_id, prep.plan_id, note, period, resume=resume)
        resumed = sum(1 for t in trials if ("", trial_key(t)) in done)
        run_missing(store, run_id, prep, [Job(t) for t in trials], done, objective=objective, workers=workers,
                    cluster=cluster, progress=progress)
        finish(store, run_id)
    outcomes: list[Outcome] = [done[("", trial_key(t))] for t in trials]
    rows = ranked(outcomes, objective, constraints)
    counts = {"trials": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
              "failed": sum(r["status"] == "failed" for r in rows),
              "meeting_constraints": sum(r["rank"] is not None for r in rows), "resumed": resumed}
    return {
        "run_id": run_id, "kind": "sweep", "model": setup.model, "account": setup.account,
        "start": period[0], "end": period[1], "objective": objective,
        "constraints": {"max_drawdown": constraints.max_drawdown, "min_round_trips": constraints.min_round_trips},
        "axes": {path: values for path, values in prep.grid.axes},
        "sampled": samples is not None and samples < prep.grid.size, "grid_size": prep.grid.size,
        "counts": counts, "n_trials": len(rows),
        "best": next((r for r in rows if r["rank"] == 1), None),
        "trials": rows,
    }


def show_sweep(journal: Path | str, run_id: str, *, objective: str, constraints: Constraints) -> dict[str, Any]:
    """A journaled sweep shown again from its recorded trials alone (no data, no config
    needed), ranked by `objective` under `constraints`, which may differ from the first time."""
    from botctl.errors import UsageError
    from botctl.store import Store

    if not Path(journal).exists():
        raise UsageError(f"--show {run_id}: no journal at {journal}")
    with Store.open(journal, readonly=True, create=False) as store:
        run = store.get_run(run_id)
        rows = store.trials(run_id) if run is not None else []
    if run is None or not rows:
        raise UsageError(f"--show {run_id}: no sweep with recorded trials of that id in {journal} "
                         f"(see `botctl --db {journal} runs`)")
    outcomes = [Outcome(params=json.loads(r["params"]), status=r["status"],
                        metrics=json.loads(r["metrics"]) if r["metrics"] else None,
                        stats=json.loads(r["stats"]) if r["stats"] else None, reason=r["reason"])
                for r in rows if r["window"] == ""]
    if not outcomes:
        raise UsageError(f"--show {run_id}: a walk-forward run; show it again by running the same walkforward command")
    axes: dict[str, list] = {}
    for outcome in outcomes:
        for path, value in outcome.params.items():
            if value not in axes.setdefault(path, []):
                axes[path].append(value)
    ranked_rows = ranked(outcomes, objective, constraints)
    return {
        "run_id": run_id, "kind": "sweep", "model": run.note.split(" ")[2] if run.note.startswith("sweep of ") else None,
        "account": run.note.split(" in ")[1].split(":")[0] if " in " in run.note else None,
        "start": run.period_start, "end": run.period_end, "objective": objective,
        "constraints": {"max_drawdown": constraints.max_drawdown, "min_round_trips": constraints.min_round_trips},
        "axes": axes, "status": run.status,
        "counts": {"trials": len(ranked_rows), "ok": sum(r["status"] == "ok" for r in ranked_rows),
                   "failed": sum(r["status"] == "failed" for r in ranked_rows),
                   "meeting_constraints": sum(r["rank"] is not None for r in ranked_rows), "resumed": 0},
        "from_journal": True,
        "n_trials": len(ranked_rows), "best": next((r for r in ranked_rows if r["rank"] == 1), None),
        "trials": ranked_rows,
    }
