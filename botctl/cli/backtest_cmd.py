"""`botctl backtest`: run the plan over history and print the figures."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from pathlib import Path

import typer

from botctl.cli.common import err, file_kind, globals_of, load_plan, parse_date, shown_path
from botctl.errors import UsageError

ROW_KEYS = ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "max_drawdown_days",
            "calmar", "turnover", "trades", "exposure", "alpha", "beta", "correlation")
PERCENT = {"total_return", "cagr", "volatility", "max_drawdown", "turnover", "exposure", "alpha"}


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key in PERCENT:
        return f"{value * 100:.2f}%"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}"


def print_table(body: dict) -> None:
    rows = [(f"model {n}", m) for n, m in body["models"].items()]
    rows += [(f"account {n}", m) for n, m in body["accounts"].items()]
    rows.append((f"benchmark {body['benchmark']['symbol']}", body["benchmark"]))
    width = max(len(name) for name, _ in rows)
    header = ["total", "cagr", "vol", "sharpe", "sortino", "maxdd", "dd_days", "calmar", "turnover", "trades",
              "exposure", "alpha", "beta", "corr"]
    typer.echo(f"backtest {body['start']} .. {body['end']}  (run {body['run_id']})")
    typer.echo(f"{'':{width}}  " + " ".join(f"{h:>9}" for h in header))
    for name, metrics in rows:
        typer.echo(f"{name:{width}}  " + " ".join(f"{_cell(k, metrics.get(k)):>9}" for k in ROW_KEYS))
    for name, metrics in rows:
        if metrics.get("blocked"):
            counts = ", ".join(f"{rule} {n}" for rule, n in metrics["blocked"].items())
            typer.echo(f"{name}: risk guard blocked {sum(metrics['blocked'].values())} order(s): {counts}")
        if metrics.get("blocked", {}).get("suspect_data") or metrics.get("collar_widened"):
            typer.echo(f"{name}: suspect data deferred {metrics['blocked'].get('suspect_data', 0)} decision(s); "
                       f"{metrics.get('collar_widened', 0)} decided on moves beyond the price collar judged real "
                       "(the market's move and the symbol's volatility)")
        if metrics.get("halted"):
            typer.echo(f"{name}: HALTED by a circuit breaker ({metrics['halted']})")


JOURNAL_COMPANIONS = ("", "-wal", "-shm", "-journal", ".lock")  # files SQLite and botctl keep beside a journal


def check_report_path(report: Path, db: Path, *, force: bool) -> None:
    """Refuse a --report path that would destroy something: the journal or a file beside it
    (whatever the path is spelled like, or linked as), any SQLite database, anything that is
    not a regular file (a device, a FIFO, a folder, `.`), an existing file without --force, or
    a folder that does not exist (none is ever created). The writer replaces the file
    atomically (a temporary file in the same folder, then a rename)."""
    shown = shown_path(report)
    target = report.expanduser()
    try:
        resolved = target.resolve()
        journal = db.expanduser().resolve()
        parent_info = os.stat(resolved.parent)
    except FileNotFoundError:
        raise UsageError(f"--report {shown}: the folder {shown_path(target.parent)} does not exist "
                         "(it is not created; make it first)") from None
    except OSError as exc:
        raise UsageError(f"--report {shown}: {exc.strerror}") from None
    if not stat.S_ISDIR(parent_info.st_mode):
        raise UsageError(f"--report {shown}: {shown_path(target.parent)} is not a folder")
    from botctl.store.journal import backtest_journal

    journals = [journal, Path(backtest_journal(db)).expanduser().resolve()]  # the trading one and the backtests'
    if any(resolved == Path(f"{j}{suffix}") for j in journals for suffix in JOURNAL_COMPANIONS):
        raise UsageError(f"--report {shown} is a journal ({db} or its backtests file) or one of their files; "
                         "choose another path")
    try:
        info = os.stat(resolved)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"--report {shown}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"--report {shown} is {file_kind(info.st_mode)}; a report is written to a regular file")
    with contextlib.suppress(OSError):
        if journal.exists() and os.path.samefile(resolved, journal):
            raise UsageError(f"--report {shown} is the journal ({db}) under another name; choose another path")
    with contextlib.suppress(OSError), open(resolved, "rb") as fh:
        if fh.read(16) == b"SQLite format 3\x00":
            raise UsageError(f"--report {shown} is an SQLite database; a report never replaces one")
    if not force:
        raise UsageError(f"--report {shown} exists; add --force to replace it")


def register(app: typer.Typer) -> None:
    @app.command()
    def backtest(
        ctx: typer.Context,
        start: str = typer.Option(None, "--start", help="First session (YYYY-MM-DD).", show_default="2015-01-01"),
        end: str = typer.Option(None, "--end", help="Last session (YYYY-MM-DD).", show_default="the last bar"),
        model: list[str] = typer.Option(None, "--model", help="Only these models (repeatable); budgets are redistributed."),
        account: list[str] = typer.Option(None, "--account", help="Only these accounts (repeatable)."),
        risk_free: float = typer.Option(0.0, "--risk-free", help="Annual risk-free rate for Sharpe/Sortino/alpha."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
        report: Path = typer.Option(None, "--report", help="Also write a self-contained HTML report here "
                                    "(a new file in an existing folder; --force to replace a file)."),
        force: bool = typer.Option(False, "--force", help="Let --report replace an existing file (never the journal)."),
        no_journal: bool = typer.Option(False, "--no-journal", help="Do not record the run in the database."),
    ) -> None:
        """Run the plan through the engine and the simulated broker over historical bars.

        Prints total return, CAGR, volatility, Sharpe, Sortino, max drawdown (and its length),
        Calmar, turnover, trades and exposure per model and per account, and the same for the
        benchmark, with alpha, beta and correlation against it. The run is journaled (orders,
        fills, daily NAV) in its own file beside the database (botctl.db: botctl-backtests.db),
        never in the trading journal, so `botctl --db botctl-backtests.db status|tail|tui`
        can show it.
        """
        from botctl.adapters.file_data import load_bars
        from botctl.runtime.backtest import journal_backtest, monthly_tables, run_backtest, summary
        from botctl.strategy.bars import bars_from_frame

        g = globals_of(ctx)
        if report is not None:
            check_report_path(report, g.db, force=force)  # before the run: a refusal must not cost one
        plan = load_plan(g, models=model or None, accounts=account or None)
        bars = bars_from_frame(load_bars(g.data), plan.symbols)
        from botctl.strategy.bars import describe_gap, gaps

        for gap in gaps(bars):
            err(f"warning: {describe_gap(gap)}")
        result = run_backtest(plan, bars, start=parse_date(start, "--start"), end=parse_date(end, "--end"))
        body = summary(result, risk_free=risk_free)
        journal = None
        if not no_journal:
            from botctl.store import Store
            from botctl.store.journal import backtest_journal

            # Never the trading journal: a backtest must not lock it, nor feed an account's state.
            journal = backtest_journal(g.db)
            with Store.open(journal, durable=False) as store:
                journal_backtest(store, plan, result)
        if report is not None:
            from botctl.runtime.report import write_html_report

            check_report_path(report, g.db, force=force)  # again: the run may have created the journal
            clock = time.perf_counter()
            curves = {**{f"account {n}": c.nav for n, c in result.accounts.items()},
                      **{f"model {n}": c.nav for n, c in result.models.items()}}
            metrics = {**{f"account {n}": m for n, m in body["accounts"].items()},
                       **{f"model {n}": m for n, m in body["models"].items()},
                       result.benchmark.name: body["benchmark"]}
            write_html_report(report, title=f"botctl backtest {body['start']} .. {body['end']}",
                              dates=result.benchmark.dates, curves=curves, benchmark_name=result.benchmark.name,
                              benchmark_nav=result.benchmark.nav, metrics=metrics, monthly=monthly_tables(result))
            err(f"report written to {report} ({time.perf_counter() - clock:.2f}s)")
        if as_json:
            typer.echo(json.dumps(body))
        else:
            print_table(body)
            if journal is not None:
                typer.echo(f"journaled as run {result.run_id} in {journal} (see: botctl --db {journal} status)")
