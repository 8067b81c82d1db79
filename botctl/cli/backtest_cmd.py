"""`botctl backtest`: run the plan over history and print the figures."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path

import typer

from botctl.cli.common import err, file_kind, globals_of, load_plan, parse_date, shown_path
from botctl.errors import UsageError

# The table's columns: (header, metric key or trade_stats key, kind), most important first:
# when the terminal is too narrow the last ones are left out (`--json` has every figure).
COLUMNS = (
    ("total", "total_return", "pct"), ("CAGR", "cagr", "pct"), ("max DD", "max_drawdown", "pct"),
    ("Sharpe", "sharpe", "num"), ("vol", "volatility", "pct"), ("trips", "round_trips", "int"),
    ("win", "win_rate", "pct"), ("Sortino", "sortino", "num"), ("Calmar", "calmar", "num"),
    ("alpha", "alpha", "pct"), ("beta", "beta", "num"), ("DD days", "max_drawdown_days", "int"),
    ("exposure", "exposure", "pct"), ("turnover", "turnover", "pct"), ("fills", "trades", "int"),
    ("corr", "correlation", "num"),
)
SIGNED = {"total_return", "cagr", "alpha"}  # coloured green above zero, red below
TRADE_STATS = {"round_trips", "win_rate"}


def _cell(key: str, kind: str, value) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "int":
        return str(int(value))
    return f"{value:.2f}"


def _style(key: str, value) -> str:
    if value is None:
        return "dim"
    if key in SIGNED:
        return "green" if value > 0 else "red" if value < 0 else ""
    if key == "max_drawdown":
        return "red" if value < -0.2 else "yellow" if value < -0.1 else ""
    return ""


def table_rows(body: dict) -> list[tuple[str, dict]]:
    rows = [(f"model {n}", m) for n, m in body["models"].items()]
    rows += [(f"account {n}", m) for n, m in body["accounts"].items()]
    rows.append((f"benchmark {body['benchmark']['symbol']}", body["benchmark"]))
    return rows


def _value(metrics: dict, key: str):
    return (metrics.get("trade_stats") or {}).get(key) if key in TRADE_STATS else metrics.get(key)


def fitting_columns(rows: list[tuple[str, dict]], width: int) -> list[tuple[str, str, str]]:
    """The leading columns that fit `width` characters, each as wide as its widest cell."""
    used = max(len(name) for name, _ in rows) + 1  # the name column and its padding
    chosen = []
    for column in COLUMNS:
        header, key, kind = column
        cell = max([len(header)] + [len(_cell(key, kind, _value(m, key))) for _, m in rows])
        if used + cell + 2 > width:
            break
        used += cell + 2
        chosen.append(column)
    return chosen


def print_table(body: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console(highlight=False)
    rows = table_rows(body)
    # On a terminal the table fits its width; written to a file or a pipe it is whole.
    columns = fitting_columns(rows, console.width) if console.is_terminal else list(COLUMNS)
    if not console.is_terminal:
        console.width = max(console.width, 400)
    console.print(f"backtest {body['start']} .. {body['end']}  (run {body['run_id']}, "
                  f"breakers: {body.get('breakers', 'halt')}, between rebalances: {body.get('rebalancing', 'hold')})")
    table = Table(box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    for header, _, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    for name, metrics in rows:
        cells = [Text(_cell(key, kind, _value(metrics, key)), style=_style(key, _value(metrics, key)))
                 for _, key, kind in columns]
        table.add_row(Text(name, style="italic" if name.startswith("benchmark") else "bold"), *cells)
    console.print(table)
    if len(columns) < len(COLUMNS):
        hidden = ", ".join(h for h, _, _ in COLUMNS[len(columns):])
        console.print(f"({len(COLUMNS) - len(columns)} columns left out at {console.width} characters wide: "
                      f"{hidden}; --json has every figure)", style="dim")
    for name, metrics in rows:
        for line in notes_for(name, metrics, body.get("breakers", "halt")):
            console.print(Text(line, style="yellow" if "blocked" in line else "bold red"))


def notes_for(name: str, metrics: dict, breakers: str) -> list[str]:
    """What a reader must know about a row: blocked orders, and each breaker trip with what it skipped."""
    out = []
    if metrics.get("blocked"):
        counts = ", ".join(f"{rule} {n}" for rule, n in metrics["blocked"].items())
        out.append(f"{name}: risk guard blocked {sum(metrics['blocked'].values())} order(s): {counts}")
    if metrics.get("blocked", {}).get("suspect_data") or metrics.get("collar_widened"):
        out.append(f"{name}: suspect data deferred {metrics['blocked'].get('suspect_data', 0)} decision(s); "
                   f"{metrics.get('collar_widened', 0)} decided on moves beyond the price collar judged real "
                   "(the market's move and the symbol's volatility)")
    for trip in metrics.get("breaker_trips") or []:
        skipped = trip["skipped_rebalances"]
        if trip["resumed_at"]:
            after = f"trading resumed {trip['resumed_at']}"
        else:
            after = "HALTED to the end, holdings frozen"
            if breakers == "halt":
                after += ": the figures after this date are not the strategy's (--breakers resume-next-session or off)"
        what = (f"; {len(skipped)} scheduled rebalance(s) skipped ({skipped[0]} .. {skipped[-1]})" if skipped
                else "")
        out.append(f"{name}: circuit breaker {trip['rule']} tripped on {trip['at']} ({trip['reason']}); {after}{what}")
    return out


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
        breakers: str = typer.Option(
            "halt", "--breakers", metavar="halt|resume-next-session|off",
            help="What a tripped circuit breaker does: halt (the default, what the unattended account does: "
                 "no new orders to the end), resume-next-session (trading resumes at the next session, the "
                 "drawdown measured afresh), off (breakers not evaluated: the strategy alone)."),
        rebalancing: str = typer.Option(
            "hold", "--rebalancing", metavar="hold|reweight",
            help="Between scheduled rebalances: hold the shares bought (the default, what the bot does) or "
                 "reweight to the schedule's last targets every session, keeping its selection."),
    ) -> None:
        """Run the plan through the engine and the simulated broker over historical bars.

        Prints total return, CAGR, volatility, Sharpe, Sortino, max drawdown (and its length),
        Calmar, turnover, trades and exposure per model and per account, and the same for the
        benchmark, with alpha, beta and correlation against it. The run is journaled (orders,
        fills, daily NAV) in its own file beside the database (botctl.db: botctl-backtests.db),
        never in the trading journal, so `botctl --db botctl-backtests.db status|tail|tui`
        can show it.
        """
        from botctl.adapters.file_data import scan_bars
        from botctl.runtime.backtest import journal_backtest, monthly_tables, run_backtest, summary
        from botctl.strategy.bars import bars_from_frame

        from botctl.runtime.book import BREAKER_MODES, REBALANCING_MODES

        if breakers not in BREAKER_MODES:
            raise UsageError(f"--breakers expects one of {', '.join(BREAKER_MODES)}, got {breakers!r}")
        if rebalancing not in REBALANCING_MODES:
            raise UsageError(f"--rebalancing expects one of {', '.join(REBALANCING_MODES)}, got {rebalancing!r}")
        g = globals_of(ctx)
        if report is not None:
            check_report_path(report, g.db, force=force)  # before the run: a refusal must not cost one
        plan = load_plan(g, models=model or None, accounts=account or None)
        # Checked, then read in batches of the five columns the matrices need: 10M bars are
        # never held whole (load_bars would hold all eight columns, sorted).
        bars = bars_from_frame(scan_bars(g.data), plan.symbols)
        from botctl.strategy.bars import describe_gap, gaps

        for gap in gaps(bars):
            err(f"warning: {describe_gap(gap)}")
        from botctl.feeds.plan_scores import refused_lines, scores_for_history

        scores, refused = scores_for_history(plan, bars, g.config_dir, g.db)  # signal books' external signals
        for line in refused_lines(refused):
            err(line)
        result = run_backtest(plan, bars, start=parse_date(start, "--start"), end=parse_date(end, "--end"),
                              breakers=breakers, rebalancing=rebalancing, external_scores=scores)
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
            from botctl.runtime.backtest import report_context
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
                              benchmark_nav=result.benchmark.nav, metrics=metrics, monthly=monthly_tables(result),
                              context=report_context(plan, result, body, data_source=str(g.data or "bundled sample data")))
            err(f"report written to {report} ({time.perf_counter() - clock:.2f}s)")
        if as_json:
            # msgspec writes the same JSON as json.dumps, without the spaces, about 8x faster:
            # with the round trips of a few thousand symbols the object is megabytes.
            import msgspec

            typer.echo(msgspec.json.encode(body).decode())
        else:
            print_table(body)
            if journal is not None:
                typer.echo(f"journaled as run {result.run_id} in {journal} "
                           f"(see: botctl --db {journal} runs; botctl --db {journal} tail --run {result.run_id})")
