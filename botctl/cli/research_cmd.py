"""`botctl sweep` and `botctl walkforward`: parameter research over the backtest engine
(the logic is botctl.research; this module parses, calls and prints)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from botctl.cli.common import err, globals_of, parse_date
from botctl.errors import UsageError

VARY_HELP = ("A parameter and its values, PATH=V1,V2,... (repeatable). PATH is MODEL.STEP.PARAM "
             "(e.g. SectorRotationModel_v1.select_momentum.lookback_days=63,126,189,252; STEP#2 for a "
             "model's second step of that name) or ACCOUNT.risk.KEY / ACCOUNT.sim.KEY "
             "(e.g. rotation-sim.risk.max_gross_leverage=1.0,1.5).")


def _checked_objective(objective: str) -> str:
    from botctl.research.sweep import OBJECTIVES

    if objective not in OBJECTIVES:
        raise UsageError(f"--objective expects one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return objective


def _checked_modes(breakers: str, rebalancing: str) -> None:
    from botctl.runtime.book import BREAKER_MODES, REBALANCING_MODES

    if breakers not in BREAKER_MODES:
        raise UsageError(f"--breakers expects one of {', '.join(BREAKER_MODES)}, got {breakers!r}")
    if rebalancing not in REBALANCING_MODES:
        raise UsageError(f"--rebalancing expects one of {', '.join(REBALANCING_MODES)}, got {rebalancing!r}")


def _workers(workers: int | None, cluster: str | None) -> int:
    from botctl.research.execute import default_workers

    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if workers is not None and cluster is not None:
        raise UsageError("--workers and --cluster exclude each other (the cluster has its own workers)")
    return workers if workers is not None else default_workers()


def _choices(file: Path | None, objective: str | None, max_drawdown: float | None, min_round_trips: int | None,
             samples: int | None, seed: int | None):
    """The sweep file (if any), its axes, and the options: each from the command line when
    given there, else from the file, else the default."""
    from botctl.research.prepare import read_sweep_file
    from botctl.research.sweep import Constraints

    spec, axes = read_sweep_file(file) if file is not None else (None, [])
    saved = spec.constraints if spec else Constraints()
    constraints = Constraints(max_drawdown=max_drawdown if max_drawdown is not None else saved.max_drawdown,
                              min_round_trips=min_round_trips if min_round_trips is not None else saved.min_round_trips)
    if constraints.max_drawdown is not None and not -1.0 <= constraints.max_drawdown <= 0.0:
        raise UsageError(f"--max-drawdown is the worst drawdown allowed, a fraction from -1 to 0 like -0.25; "
                         f"got {constraints.max_drawdown:g}")
    if constraints.min_round_trips is not None and constraints.min_round_trips < 0:
        raise UsageError(f"--min-round-trips cannot be negative, got {constraints.min_round_trips}")
    return (spec, axes, _checked_objective(objective or (spec.objective if spec and spec.objective else "sharpe")),
            constraints, samples if samples is not None else spec.samples if spec else None,
            seed if seed is not None else spec.seed if spec and spec.seed is not None else 0)


def _check_proposal_path(target: Path, g, *, force: bool) -> None:
    """The diff never replaces a config file (botctl does not rewrite the plan), a journal, an
    SQLite file or anything but a regular file; an existing file only with --force."""
    import os

    from botctl.cli.backtest_cmd import check_report_path

    for name in ("strategies.yaml", "accounts.yaml"):
        config = g.config_dir / name
        if config.exists() and target.exists() and os.path.samefile(config, target):
            raise UsageError(f"--propose {target} is the config file {name}; the diff goes to another file "
                             "(botctl never rewrites the plan)")
    try:
        check_report_path(target, g.db, force=force)
    except UsageError as exc:
        raise UsageError(str(exc).replace("--report", "--propose").replace("a report", "a proposal")) from None


def _cell(value, kind: str) -> str:
    from botctl.cli.backtest_cmd import _cell as cell

    return cell("", kind, value)


def print_sweep(body: dict, limit: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    counts = body["counts"]
    console.print(f"sweep of {body['model']} ({body['account']}) {body['start']} .. {body['end']}: "
                  f"{counts['trials']} trial(s), {counts['ok']} ran, {counts['failed']} failed, "
                  f"{counts['meeting_constraints']} meet the constraints; ranked by {body['objective']} "
                  f"(run {body['run_id']}{', ' + str(counts['resumed']) + ' resumed' if counts['resumed'] else ''}"
                  f"{', shown from the journal' if body.get('from_journal') else ''})")
    table = Table(box=None, pad_edge=False)
    paths = list(body["axes"])
    table.add_column("rank", justify="right")
    for path in paths:
        table.add_column(path.split(".")[-1], justify="right")
    columns = (("Sharpe", "sharpe", "num"), ("CAGR", "cagr", "pct"), ("max DD", "max_drawdown", "pct"),
               ("Calmar", "calmar", "num"))
    for header, _, _ in columns:
        table.add_column(header, justify="right")
    table.add_column("trips", justify="right")
    table.add_column("deflated SR", justify="right")
    table.add_column("note")
    for row in body["trials"][:limit]:
        metrics = row["metrics"] or {}
        note = row.get("reason") or "; ".join(row.get("constraint_failures", []))
        table.add_row(str(row["rank"] or "-"), *[str(row["params"][p]) for p in paths],
                      *[_cell(metrics.get(key), kind) for _, key, kind in columns],
                      _cell((metrics.get("trade_stats") or {}).get("round_trips"), "int"),
                      _cell(row["deflated_sharpe"], "num"), note[:80])
    console.print(table)
    if len(body["trials"]) > limit:
        console.print(f"({len(body['trials']) - limit} more trial(s); --top N shows more, --json has all)", style="dim")
    console.print(f"deflated SR: the probability that the trial's true Sharpe ratio exceeds the best that "
                  f"{counts['ok']} trial(s) would show by luck alone (Bailey & Lopez de Prado, 2014)", style="dim")


def register(app: typer.Typer) -> None:
    @app.command()
    def sweep(
        ctx: typer.Context,
        vary: list[str] = typer.Option(None, "--vary", help=VARY_HELP),
        file: Path = typer.Option(None, "--file", help="A sweep file (YAML) with `vary:` (PATH: [values] or "
                                  "{from, to, step}), and optionally model, objective, samples, seed, constraints."),
        samples: int = typer.Option(None, "--samples", help="Run a random sample of N combinations, not the whole grid."),
        seed: int = typer.Option(None, "--seed", help="The random sample's seed.", show_default="0"),
        objective: str = typer.Option(None, "--objective", metavar="sharpe|sortino|cagr|calmar|total_return|alpha|"
                                      "max_drawdown|deflated_sharpe", help="What ranks the trials (higher is better).",
                                      show_default="sharpe"),
        max_drawdown: float = typer.Option(None, "--max-drawdown", help="Constraint: the max drawdown must be above "
                                           "this (e.g. -0.25)."),
        min_round_trips: int = typer.Option(None, "--min-round-trips", help="Constraint: at least N round trips."),
        model: str = typer.Option(None, "--model", help="The model the trials measure (needed when the "
                                  "paths do not name exactly one)."),
        start: str = typer.Option(None, "--start", help="First session (YYYY-MM-DD).", show_default="2015-01-01"),
        end: str = typer.Option(None, "--end", help="Last session (YYYY-MM-DD).", show_default="the last bar"),
        yes: bool = typer.Option(False, "--yes", help="Run a grid of more than 10 million trials."),
        workers: int = typer.Option(None, "--workers", help="Local worker processes.", show_default="every core"),
        cluster: str = typer.Option(None, "--cluster", help="Run the trials on a Dask cluster: the scheduler's "
                                    "address, e.g. tcp://scheduler:8786 (needs botctl[cluster])."),
        resume: str = typer.Option(None, "--resume", help="Resume this sweep run (the same sweep resumes on its own; "
                                   "this checks it is that run)."),
        fresh: bool = typer.Option(False, "--fresh", help="Start a new run even if this sweep was run before."),
        top: int = typer.Option(20, "--top", min=1, help="Trials shown in the table."),
        show: str = typer.Option(None, "--show", metavar="RUN_ID", help="Show a journaled sweep again from its "
                                 "recorded trials (ranked by --objective and the constraints given now); runs nothing."),
        report: Path = typer.Option(None, "--report", help="Also write an HTML report here (heatmap, best equity "
                                    "curves, deflated Sharpe ratios)."),
        force: bool = typer.Option(False, "--force", help="Let --report replace an existing file."),
        breakers: str = typer.Option("halt", "--breakers", metavar="halt|resume-next-session|off",
                                     help="What a tripped circuit breaker does in each trial (as in backtest)."),
        rebalancing: str = typer.Option("hold", "--rebalancing", metavar="hold|reweight",
                                        help="Between scheduled rebalances (as in backtest)."),
        risk_free: float = typer.Option(0.0, "--risk-free", help="Annual risk-free rate for Sharpe/Sortino/alpha."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object: {\"trials\": [...], ...}."),
    ) -> None:
        """Backtest every combination of parameter values (or a random sample) and rank them.

        Each trial sets its values in the parsed config files, which are then validated like
        any config, and backtests one model over the same data. Trials are ranked by
        --objective among those meeting the constraints, each with its deflated Sharpe ratio
        (how likely it beats the luckiest of that many trials). The sweep and every trial are
        journaled in the backtests journal (botctl.db: botctl-backtests.db) as they finish; a
        killed sweep run again with the same arguments resumes without redoing finished
        trials. A failed trial is recorded with its reason and the sweep goes on.
        """
        from botctl.research.prepare import prepare
        from botctl.research.run import run_sweep
        from botctl.store.journal import backtest_journal

        _checked_modes(breakers, rebalancing)
        g = globals_of(ctx)
        spec, file_axes, objective, constraints, samples, seed = _choices(file, objective, max_drawdown,
                                                                          min_round_trips, samples, seed)
        if show is not None:
            from botctl.research.run import show_sweep

            if vary or file is not None or report is not None:
                raise UsageError("--show reads a journaled sweep: it takes no --vary, --file or --report")
            shown = show_sweep(backtest_journal(g.db), show, objective=objective, constraints=constraints)
            if as_json:
                typer.echo(json.dumps(shown))
            else:
                print_sweep(shown, top)
            return
        count = _workers(workers, cluster)
        if report is not None:
            from botctl.cli.backtest_cmd import check_report_path

            check_report_path(report, g.db, force=force)
        prep = prepare(g.config_dir, g.data, vary or [], file_axes, model=model or (spec.model if spec else None),
                       start=parse_date(start, "--start"), end=parse_date(end, "--end"), breakers=breakers,
                       rebalancing=rebalancing, risk_free=risk_free, samples=samples, yes=yes)
        body = run_sweep(prep, backtest_journal(g.db), samples=samples, seed=seed, objective=objective,
                         constraints=constraints, yes=yes, workers=count, cluster=cluster, resume=resume,
                         fresh=fresh, progress=not as_json)
        if report is not None:
            from botctl.research.report import write_sweep_report

            write_sweep_report(report, prep, body)
            err(f"report written to {report}")
        if as_json:
            typer.echo(json.dumps(body))
        else:
            print_sweep(body, top)
            typer.echo(f"journaled as run {body['run_id']} in {backtest_journal(g.db)}")
        sys.stdout.flush()

    @app.command()
    def walkforward(
        ctx: typer.Context,
        vary: list[str] = typer.Option(None, "--vary", help=VARY_HELP),
        file: Path = typer.Option(None, "--file", help="A sweep file (YAML), as for `botctl sweep`."),
        train: str = typer.Option("3y", "--train", help="Each train window's span: 3y, 18m, ..."),
        test: str = typer.Option("1y", "--test", help="Each test window's span (and the step between windows)."),
        anchored: bool = typer.Option(False, "--anchored", help="Every train window starts at --start (it grows); "
                                      "otherwise they roll, keeping --train's span."),
        samples: int = typer.Option(None, "--samples", help="A random sample of N combinations per train window."),
        seed: int = typer.Option(None, "--seed", help="The random sample's seed.", show_default="0"),
        objective: str = typer.Option(None, "--objective", help="What picks the best trial (as in sweep).",
                                      show_default="sharpe"),
        max_drawdown: float = typer.Option(None, "--max-drawdown", help="Constraint on the train windows' trials."),
        min_round_trips: int = typer.Option(None, "--min-round-trips", help="Constraint: at least N round trips."),
        model: str = typer.Option(None, "--model", help="The model the trials measure."),
        start: str = typer.Option(None, "--start", help="First session (YYYY-MM-DD).", show_default="2015-01-01"),
        end: str = typer.Option(None, "--end", help="Last session (YYYY-MM-DD).", show_default="the last bar"),
        yes: bool = typer.Option(False, "--yes", help="Run more than 10 million trials."),
        workers: int = typer.Option(None, "--workers", help="Local worker processes.", show_default="every core"),
        cluster: str = typer.Option(None, "--cluster", help="A Dask scheduler's address (tcp://host:8786)."),
        resume: str = typer.Option(None, "--resume", help="Resume this walk-forward run (it also resumes on its own)."),
        propose: str = typer.Option(None, "--propose", metavar="FILE|-", help="Write the last window's chosen "
                                    "parameters as a unified diff of strategies.yaml/accounts.yaml to FILE (- for "
                                    "stdout) for review; the config files are never changed."),
        force: bool = typer.Option(False, "--force", help="Let --propose replace an existing file."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Walk forward: pick the best parameters in each train window, trade them in the next
        test window, and report the stitched out-of-sample figures next to the in-sample ones and
        next to the shipped parameters over the same test windows. Journaled like a sweep (the
        train trials and each window's tests), and resumed the same way."""
        from botctl.research.prepare import prepare
        from botctl.research.propose import proposal_diff
        from botctl.research.walkforward import run_walkforward
        from botctl.store.journal import backtest_journal

        g = globals_of(ctx)
        spec, file_axes, objective, constraints, samples, seed = _choices(file, objective, max_drawdown,
                                                                          min_round_trips, samples, seed)
        count = _workers(workers, cluster)
        target = None
        if propose not in (None, "-"):
            target = Path(propose)
            _check_proposal_path(target, g, force=force)
        from botctl.research.walkforward import parse_span

        parse_span(train, "--train"), parse_span(test, "--test")
        prep = prepare(g.config_dir, g.data, vary or [], file_axes, model=model or (spec.model if spec else None),
                       start=parse_date(start, "--start"), end=parse_date(end, "--end"), samples=samples, yes=yes)
        body = run_walkforward(prep, backtest_journal(g.db), train=train, test=test, anchored=anchored,
                               samples=samples, seed=seed, objective=objective, constraints=constraints, yes=yes,
                               workers=count, cluster=cluster, resume=resume, progress=not as_json)
        diff = None
        if propose is not None:
            diff = proposal_diff(prep.setup.strategies, prep.setup.accounts, body["proposal"] or {}) \
                if body["proposal"] else ""
            body["proposal_diff"] = diff
            if target is not None:
                from botctl.runtime.report import _write_atomic

                _write_atomic(target, diff)
                err(f"proposal written to {target} ({'no change' if not diff else 'review, then apply with patch -p1'})")
        if as_json:
            typer.echo(json.dumps(body))
            return
        print_walkforward(body)
        if propose == "-":
            typer.echo(diff or "(no proposal: the chosen parameters are the shipped ones, or none met the constraints)")


def print_walkforward(body: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"walk-forward of {body['model']} ({body['account']}): {len(body['windows'])} window(s), "
                  f"{body['train']} train / {body['test']} test, {'anchored' if body['anchored'] else 'rolling'}, "
                  f"best by {body['objective']} (run {body['run_id']})")
    table = Table(box=None, pad_edge=False)
    for header in ("test window", "chosen", "in-sample Sharpe", "out-of-sample Sharpe", "shipped Sharpe",
                   "deflated SR"):
        table.add_column(header, justify="left" if header in ("test window", "chosen") else "right")
    for w in body["windows"]:
        chosen = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in w["chosen"].items())
        if w["chosen_from"] != "sweep":
            chosen += " (shipped: none met the constraints)"
        table.add_row(f"{w['test']['start']}..{w['test']['end']}", chosen,
                      _cell((w["in_sample"] or {}).get("sharpe"), "num"), _cell(w["out_of_sample"].get("sharpe"), "num"),
                      _cell(w["shipped"].get("sharpe"), "num"), _cell(w["deflated_sharpe"], "num"))
    console.print(table)
    oos, shipped, ins = body["out_of_sample"]["metrics"], body["shipped"]["metrics"], body["in_sample"]["mean"]
    summary = Table(box=None, pad_edge=False)
    for header in ("stitched test windows", "Sharpe", "CAGR", "max DD", "Calmar"):
        summary.add_column(header, justify="left" if header.startswith("stitched") else "right")
    summary.add_row("in-sample (mean of windows)", _cell(ins["sharpe"], "num"), _cell(ins["cagr"], "pct"),
                    _cell(ins["max_drawdown"], "pct"), _cell(ins["calmar"], "num"))
    for name, m in (("out-of-sample (chosen)", oos), ("shipped parameters", shipped)):
        summary.add_row(name, _cell(m.get("sharpe"), "num"), _cell(m.get("cagr"), "pct"),
                        _cell(m.get("max_drawdown"), "pct"), _cell(m.get("calmar"), "num"))
    console.print(summary)
