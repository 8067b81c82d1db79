"""Walk-forward: in each train window a sweep picks the best parameters, which then trade the
following test window. The test windows, chained, are the out-of-sample curve; it is shown
next to the in-sample figures and next to the shipped parameters over the same windows."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from botctl.errors import UsageError
from botctl.research.execute import Job
from botctl.research.grid import Params, check_size, trial_key
from botctl.research.params import shipped_value
from botctl.research.prepare import Prepared
from botctl.research.record import begin, finish
from botctl.research.sweep import Constraints, identity, ranked
from botctl.research.trials import Outcome

_SPAN = re.compile(r"^([1-9][0-9]*)([ym])$")


class Window(msgspec.Struct, frozen=True):
    train_start: date
    train_end: date
    test_start: date
    test_end: date

    @property
    def label(self) -> str:
        return f"{self.train_start}..{self.train_end}"


def parse_span(text: str, option: str) -> int:
    """`3y` or `18m` -> months."""
    match = _SPAN.match(text.strip().lower())
    if not match:
        raise UsageError(f"{option} expects a span like 3y or 18m, got {text!r}")
    count = int(match[1])
    return count * 12 if match[2] == "y" else count


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)  # pragma: no cover - a 28th always exists


def windows(start: date, end: date, train_months: int, test_months: int, *, anchored: bool) -> list[Window]:
    """Train windows followed by test windows stepping by the test span until `end`; rolling
    windows keep the train span, anchored ones all start at `start`."""
    out = []
    k = 0
    while True:
        test_start = add_months(start, train_months + k * test_months)
        if test_start > end:
            break
        train_start = start if anchored else add_months(test_start, -train_months)
        test_end = min(add_months(test_start, test_months) - timedelta(days=1), end)
        out.append(Window(train_start, test_start - timedelta(days=1), test_start, test_end))
        k += 1
    if not out:
        raise UsageError(f"no walk-forward window fits {start}..{end} with {train_months} month(s) of training "
                         f"and {test_months} of testing; widen --start/--end or shorten --train")
    return out


def stitch(curves: list[dict[str, list]]) -> tuple[list[str], list[float]]:
    """Chain the test windows' NAV curves: each starts where the previous one ended (its first
    point, the prior close, is the previous window's last)."""
    dates: list[str] = []
    nav: list[float] = []
    for curve in curves:
        values = np.asarray(curve["nav"], dtype=float)
        if not nav:
            dates, nav = list(curve["dates"]), values.tolist()
            continue
        scaled = values * (nav[-1] / values[0]) if values[0] > 0 else values
        dates += curve["dates"][1:]
        nav += scaled[1:].tolist()
    return dates, nav


def stitched_metrics(dates: list[str], nav: list[float]) -> dict[str, Any]:
    from botctl.engine.metrics import compute_metrics

    return compute_metrics([date.fromisoformat(d) for d in dates], np.asarray(nav, dtype=float), invested=nav[0])


def run_walkforward(prep: Prepared, journal: Path | str, *, train: str, test: str, anchored: bool,
                    samples: int | None, seed: int, objective: str, constraints: Constraints, yes: bool = False,
                    workers: int = 1, cluster: str | None = None, resume: str | None = None,
                    progress: bool = False) -> dict[str, Any]:
    from botctl.research.run import run_missing
    from botctl.research.backtest_api import DEFAULT_START, session_rows
    from botctl.store import Store

    setup, bars = prep.setup, prep.bars
    first, last = session_rows(bars, setup.start, setup.end)
    spans = parse_span(train, "--train"), parse_span(test, "--test")
    # Windows count from the period asked for (2015-01-01 by default), not its first session.
    plan = windows(setup.start or DEFAULT_START, bars.dates[last], *spans, anchored=anchored)
    check_size(prep.grid, samples, yes=yes)
    if samples is None and prep.grid.size * len(plan) > 10_000_000 and not yes:
        raise UsageError(f"{prep.grid.size:,} trials in each of {len(plan)} windows; add --yes or --samples N")
    trials = list(prep.grid.combinations(samples, seed))
    shipped: Params = {path: shipped_value(path, prep.strategies_value, prep.accounts_value)
                       for path, _ in prep.grid.axes}
    run_id = identity("wf", setup, bars, trials, {"train": spans[0], "test": spans[1], "anchored": anchored})
    note = (f"walk-forward of {setup.model}: {len(plan)} window(s) ({train} train, {test} test, "
            f"{'anchored' if anchored else 'rolling'}), {len(trials)} trial(s) each")
    with Store.open(journal, durable=False) as store:
        done = begin(store, run_id, prep.plan_id, note, (bars.dates[first].isoformat(), bars.dates[last].isoformat()),
                     resume=resume)
        train_jobs = [Job(t, f"train {w.label}", w.train_start, w.train_end) for w in plan for t in trials]
        run_missing(store, run_id, prep, train_jobs, done, objective=objective, workers=workers, cluster=cluster,
                    progress=progress)
        chosen: list[tuple[Params, dict[str, Any] | None]] = []
        for w in plan:
            rows = ranked([done[(f"train {w.label}", trial_key(t))] for t in trials], objective, constraints)
            best = next((r for r in rows if r["rank"] == 1), None)
            chosen.append((best["params"] if best else shipped, best))
        test_jobs = [Job(params, f"test {w.test_start}..{w.test_end}", w.test_start, w.test_end, keep_curve=True)
                     for w, (params, _) in zip(plan, chosen)]
        test_jobs += [Job(shipped, f"shipped {w.test_start}..{w.test_end}", w.test_start, w.test_end, keep_curve=True)
                      for w in plan]
        run_missing(store, run_id, prep, test_jobs, done, objective=objective, workers=workers, cluster=cluster,
                    progress=progress)
        finish(store, run_id)

    out_windows: list[dict[str, Any]] = []
    oos_curves, shipped_curves = [], []
    for w, (params, best), job, ship in zip(plan, chosen, test_jobs, test_jobs[len(plan):]):
        tested, base = done[(job.window, trial_key(job.params))], done[(ship.window, trial_key(ship.params))]
        for outcome in (tested, base):
            if outcome.status != "ok":
                raise UsageError(f"the test window {w.test_start}..{w.test_end} could not run: {outcome.reason}")
        oos_curves.append(_curve(tested))
        shipped_curves.append(_curve(base))
        out_windows.append({
            "train": {"start": w.train_start.isoformat(), "end": w.train_end.isoformat()},
            "test": {"start": w.test_start.isoformat(), "end": w.test_end.isoformat()},
            "chosen": params, "chosen_from": "sweep" if best else "shipped (no trial met the constraints)",
            "trials": len(trials), "deflated_sharpe": best["deflated_sharpe"] if best else None,
            "in_sample": best["metrics"] if best else None,
            "out_of_sample": tested.metrics, "shipped": base.metrics,
        })
    oos_dates, oos_nav = stitch(oos_curves)
    ship_dates, ship_nav = stitch(shipped_curves)
    in_sample: list[dict[str, Any]] = [w["in_sample"] for w in out_windows if w["in_sample"]]
    keys = ("sharpe", "cagr", "max_drawdown", "calmar", "total_return")
    return {
        "run_id": run_id, "kind": "walkforward", "model": setup.model, "account": setup.account,
        "objective": objective, "anchored": anchored, "train": train, "test": test,
        "constraints": {"max_drawdown": constraints.max_drawdown, "min_round_trips": constraints.min_round_trips},
        "axes": {path: values for path, values in prep.grid.axes}, "shipped_params": shipped,
        "windows": out_windows,
        "in_sample": {"mean": {k: float(np.mean([m[k] for m in in_sample if m.get(k) is not None]))
                               if in_sample else None for k in keys},
                      "note": "the mean over windows of the chosen parameters' figures in their own train window"},
        "out_of_sample": {"metrics": stitched_metrics(oos_dates, oos_nav), "curve": {"dates": oos_dates, "nav": oos_nav}},
        "shipped": {"metrics": stitched_metrics(ship_dates, ship_nav), "curve": {"dates": ship_dates, "nav": ship_nav}},
        "proposal": out_windows[-1]["chosen"] if out_windows[-1]["chosen_from"] == "sweep" else None,
    }


def _curve(outcome: Outcome) -> dict[str, list]:
    assert outcome.stats is not None and "curve" in outcome.stats
    curve: dict[str, list] = outcome.stats["curve"]
    return curve
