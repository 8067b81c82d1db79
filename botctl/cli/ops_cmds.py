"""`botctl status` and `botctl tail`: read the journal directly (read-only), whether or not
the bot runs."""

from __future__ import annotations

import json
import sys
import time
from datetime import date, datetime, timedelta, timezone

import msgspec
import typer

from botctl.cli.common import err, globals_of, out
from botctl.cli.runs_cmd import require_run
from botctl.errors import EXIT_NOT_RUNNING, EXIT_RUNTIME, UsageError
from botctl.records import SEVERITIES as SEVERITY_LEVELS
from botctl.records import fill_text
from botctl.text import printable

KINDS = {"orders": "orders", "fills": "fills", "nav": "nav", "events": "events", "signals": "signals"}
MAX_ROWS = 2**63 - 1  # SQLite's largest LIMIT


def _open_readonly(g):
    from botctl.store import Store

    return Store.open(g.db, create=False, readonly=True)


def _plan_or_none(g):
    """The plan, when the config is readable: status still works without it."""
    from botctl.cli.common import read_config_file
    from botctl.errors import BotctlError
    from botctl.spec.load import ACCOUNTS_FILE, STRATEGIES_FILE, load_config
    from botctl.spec.plan import compile_plan

    try:
        config = load_config(read_config_file(g.config_dir / STRATEGIES_FILE), read_config_file(g.config_dir / ACCOUNTS_FILE))
        return compile_plan(config), None
    except BotctlError as exc:
        return None, str(exc).splitlines()[0]


def _next_weekday_rebalance(schedule, today: date) -> date | None:
    """Next rebalance date over the NYSE's rule-based sessions (weekdays less its regular
    holidays): status does not load the exchange calendar, to start fast; `botctl plan`
    also knows one-off closures."""
    from botctl.strategy.holidays import is_regular_session
    from botctl.strategy.schedule import rebalance_sessions

    days = [today - timedelta(days=100) + timedelta(days=i) for i in range(500)]
    weekdays = [d for d in days if is_regular_session(d)]
    upcoming = [d for d in rebalance_sessions(weekdays, schedule) if d >= today]
    return upcoming[0] if upcoming else None


def register(app: typer.Typer) -> None:
    @app.command()
    def status(
        ctx: typer.Context,
        account: list[str] = typer.Option(None, "--account", help="Only these accounts (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        require_running: bool = typer.Option(False, "--require-running",
                                             help="Exit 3 when no bot is running (a finished run, or none yet)."),
    ) -> None:
        """Is the bot running, and how is each account: NAV, cash, leverage, P&L, positions,
        open orders, models, halts, last and next cycle, last error.

        Exit 0 when healthy, 1 when the bot should be running but is not (dead pid or stale
        heartbeat) or the last run failed, so scripts and container health checks can rely on it.
        With --require-running, also 3 when no bot runs at all (a run that finished cleanly).
        """
        from botctl.store.overview import account_view, journal_accounts, run_view, simulated_now

        g = globals_of(ctx)
        plan, config_problem = _plan_or_none(g)
        with _open_readonly(g) as store:
            rv = run_view(store)
            controls = store.controls()
            ids = [a.id for a in plan.accounts] if plan else []
            ids += [a for a in journal_accounts(store) if a not in ids and not _is_model_book(a, plan)]
            if account:
                unknown = [a for a in account if a not in ids]
                if unknown:
                    raise UsageError(f"unknown account(s): {', '.join(unknown)} (known: {', '.join(ids)})")
                ids = [a for a in ids if a in account]
            views = {a: account_view(store, a, controls) for a in ids}
            replay_now = simulated_now(store, rv.run)  # a replay's next rebalance is on its own clock
            from botctl.config_files import feed_source_names
            from botctl.store.overview import feed_views

            declared = feed_source_names(g.config_dir)  # feeds.yaml's live sources, listed before they send
            feeds = feed_views(store, datetime.now(timezone.utc), also=declared[0] if declared else ())
        today = (replay_now or datetime.now(timezone.utc)).date()
        body = {
            "running": rv.running,
            "pid": rv.run.pid if rv.run and rv.running else None,
            "heartbeat_at": rv.run.heartbeat_at.isoformat() if rv.run and rv.run.heartbeat_at else None,
            "uptime_s": round((datetime.now(timezone.utc) - rv.run.started_at).total_seconds(), 1)
            if rv.run and rv.running else None,
            "healthy": not rv.stale,
            "state": rv.reason,
            "run": msgspec.to_builtins(rv.run) if rv.run else None,
            "config_error": config_problem,
            "accounts": {},
            "feeds": msgspec.to_builtins(feeds),
        }
        for acc_id, view in views.items():
            acc_plan = next((a for a in plan.accounts if a.id == acc_id), None) if plan else None
            models = [{"name": m.name, "budget": m.budget,
                       "next_rebalance": (n.isoformat() if (n := _next_weekday_rebalance(m.schedule, today)) else None)}
                      for m in acc_plan.models] if acc_plan else []
            next_cycle = min((m["next_rebalance"] for m in models if m["next_rebalance"]), default=None)
            body["accounts"][acc_id] = {
                "mode": acc_plan.mode if acc_plan else None,
                "broker": acc_plan.broker if acc_plan else None,
                "halted": view.halted, "halt_reason": view.halt_reason,
                "halted_since": view.halted_since.isoformat() if view.halted_since else None,
                "nav": view.nav, "cash": view.cash, "leverage": view.leverage,
                "day_pnl": view.day_pnl, "total_pnl": view.total_pnl,
                "positions": msgspec.to_builtins(view.positions),
                "book_positions": msgspec.to_builtins(view.book_positions),
                # Simulated books mark at total-return adjusted closes (returns stay right across
                # dividends and splits); a real broker marks at the prices that trade.
                "price_basis": _price_basis(acc_plan.broker if acc_plan else None),
                "open_orders": msgspec.to_builtins(view.open_orders),
                "models": models,
                "run_id": view.run_id,
                "marked_at": view.marked_at.isoformat() if view.marked_at else None,
                "last_cycle_at": view.last_cycle_at.isoformat() if view.last_cycle_at else None,
                "next_cycle_at": next_cycle,
                "last_error": view.last_error,
                "last_warning": view.last_warning,
            }
        if as_json:
            typer.echo(json.dumps(body))
        else:
            _print_status(body)
        if rv.stale:
            raise typer.Exit(EXIT_RUNTIME)
        if require_running and not rv.running:
            err(f"error: the bot is not running ({rv.reason})")
            raise typer.Exit(EXIT_NOT_RUNNING)

    @app.command()
    def tail(
        ctx: typer.Context,
        follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new rows until Ctrl-C."),
        n: int = typer.Option(20, "-n", "--lines", min=0, help="How many of the newest rows to print first."),
        kind: str = typer.Option("events", "--kind", help="orders, fills, nav, events or signals (external feeds)."),
        account: str = typer.Option(None, "--account", help="Only this account."),
        severity: str = typer.Option(None, "--severity", help="Events at or above INFO, WARN, ERROR or CRITICAL."),
        symbol: str = typer.Option(None, "--symbol", help="Only this symbol."),
        run: str = typer.Option(None, "--run", help="Only this run's rows (ids from `botctl runs`)."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
        interval: float = typer.Option(0.5, "--interval", min=0.05, help="Seconds between polls with -f."),
    ) -> None:
        """Print the newest journal records, oldest first, one per line; -f follows new rows."""
        if kind not in KINDS:
            raise UsageError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
        filters: dict = {}
        if kind == "signals" and (account or run):
            raise UsageError("--account and --run do not apply to --kind signals (signals belong to no account or run)")
        if account:
            filters["account"] = account
        if symbol:
            if kind == "nav":
                raise UsageError("--symbol does not apply to --kind nav")
            filters["symbol"] = symbol.upper()
        if severity:
            if kind != "events":
                raise UsageError("--severity applies to --kind events")
            level = severity.upper()
            if level not in SEVERITY_LEVELS:
                raise UsageError(f"--severity must be one of {', '.join(SEVERITY_LEVELS)}, got {severity!r}")
            filters["severity_at_least"] = level
        color = sys.stdout.isatty() and not as_json
        n = min(n, MAX_ROWS)  # "more rows than SQLite can count" is every row
        g = globals_of(ctx)
        with _open_readonly(g) as store:
            if run:
                filters["run_id"] = require_run(store, run).run_id
            if account:
                _check_known(store, g, "account", account)
            if symbol:
                _check_known(store, g, "symbol", filters["symbol"])
            last_id = 0
            for row_id, record in store.newest(KINDS[kind], n, **filters) if n else []:
                _print_record(kind, record, as_json, color)
                last_id = row_id
            if not n:
                newest = store.newest(KINDS[kind], 1, **filters)
                last_id = newest[0][0] if newest else 0
            if not follow:
                return
            try:
                while True:
                    rows = store.rows_after(KINDS[kind], last_id, 500, **filters)
                    for row_id, record in rows:
                        _print_record(kind, record, as_json, color)
                        last_id = row_id
                    sys.stdout.flush()
                    if not rows:
                        time.sleep(interval)
            except KeyboardInterrupt:
                return


def _check_known(store, g, column: str, value: str) -> None:
    """A --account or --symbol that neither the journal nor the config knows is a typo, not an
    empty result: a usage error listing the known ones. (`*` or `%` are plain characters.)"""
    tables = ("orders", "fills", "events") + (("nav",) if column == "account" else ())
    with store._guard():
        for table in tables:
            if store.conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1", (value,)).fetchone():
                return
        seen = {row[0] for table in tables
                for row in store.conn.execute(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL")}
    plan, _ = _plan_or_none(g)
    configured = set()
    if plan is not None:
        configured = {a.id for a in plan.accounts} if column == "account" else set(plan.symbols)
    if value in configured:
        return  # configured, nothing journaled yet
    known = ", ".join(sorted(seen | configured)) or "none yet"
    raise UsageError(f"unknown {column} {value!r} (known: {known})")


def _is_model_book(account: str, plan) -> bool:
    return bool(plan) and any(account == m.name for a in plan.accounts for m in a.models)


def _price_basis(broker: str | None) -> str:
    return {"sim": "adjusted", "alpaca": "as traded"}.get(broker or "", "as journaled")


_BASIS_TEXT = {
    "adjusted": "marked at total-return adjusted closes (`botctl tail --kind fills` shows what traded)",
    "as traded": "marked at the broker's (as-traded) prices",
    "as journaled": "marked at the prices journaled",
}


def _money(value) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _print_status(body: dict) -> None:
    state = "running" if body["running"] else "not running"
    if not body["healthy"]:
        state = f"UNHEALTHY: {body['state']}"
    elif not body["running"]:
        state = f"not running ({body['state']})"
    out(f"bot: {state}" + (f", pid {body['pid']}, up {body['uptime_s']:.0f}s" if body["pid"] else "")
               + (f", last heartbeat {body['heartbeat_at']}" if body["heartbeat_at"] else ""))
    if body["run"]:
        run = body["run"]
        period = f" {run['period_start']}..{run['period_end']}" if run.get("period_start") else ""
        out(f"last run: {run['run_id']} ({run['kind']}{period}, {run['status']})")
    if body["config_error"]:
        out(f"config: {body['config_error']}")
    for f in body.get("feeds", []):
        stale = f", STALE since {f['stale_since']}: no new entries from it" if f["stale"] else ""
        out(f"feed {f['source']}: {f['today']} signal(s) received today (UTC), {f['signals']} in all, "
            f"last received {f['last_received_at'] or 'never'}{stale}")
    for acc_id, a in body["accounts"].items():
        halted = f"HALTED since {a['halted_since']}: {a['halt_reason']}" if a["halted"] else "trading allowed"
        out()
        out(f"account {acc_id} ({a['broker'] or '?'}, {a['mode'] or '?'}): {halted}")
        if a["nav"] is None:
            out("  no NAV recorded yet")
        else:
            out(f"  NAV {_money(a['nav'])}  cash {_money(a['cash'])}  leverage {a['leverage']:.2f}x  "
                       f"day P&L {_money(a['day_pnl'])}  total P&L {_money(a['total_pnl'])}  (marked {a['marked_at']})")
        if a["positions"]:
            out(f"  positions, {_BASIS_TEXT[a['price_basis']]}:")
        for p in a["positions"]:
            out(f"  {p['symbol']:<6} {p['qty']:>12.4f} @ {p['price']:>10.2f} = {_money(p['value']):>14} "
                       f"{p['weight']:>7.1%}  unrealised {_money(p['unrealized_pnl'])}")
        for b in a.get("book_positions", []):
            def num(x: float | None, spec: str = ".2f") -> str:
                return "-" if x is None else format(x, spec)
            waiting = b.get("exit_waiting")
            if b["entered_on"] is None:
                line = f"  book {b['model']}: {b['symbol']} {b['qty']:g} shares to sell"
            else:
                line = (f"  book {b['model']}: {b['symbol']} entered {b['entered_on']} ({b['age_days']} days before "
                        f"{b['as_of']}) @ {num(b['entry_price'])}, stop {num(b['stop_level'])}, ladder stage "
                        f"{b['ladder_stage']}, score {num(b['score'], '.4g')}")
            if waiting:
                line += (f"; EXIT WAITING since {waiting['since']}: no price for {b['symbol']}, "
                         + ("its exits are not checked" if waiting["decided_on"] is None
                            else f"the {waiting['rule']} sale decided on {waiting['decided_on']} is not sent")
                         + " (nothing is sold blind)")
            out(line)
        if a["open_orders"]:
            out(f"  open orders: {len(a['open_orders'])}")
            for o in a["open_orders"][:10]:
                out(f"    {o['side']} {o['qty']:g} {o['symbol']} ({o['status']}) {o['client_order_id']}")
        for m in a["models"]:
            out(f"  model {m['name']}: budget {m['budget']:.1%}, next rebalance {m['next_rebalance']}")
        out(f"  last cycle {a['last_cycle_at'] or '-'}; next cycle {a['next_cycle_at'] or '-'}")
        if a["last_error"]:
            out(f"  last error: {a['last_error']}")
        if a.get("last_warning"):
            out(f"  last warning: {a['last_warning']}")


_COLORS = {"WARN": "yellow", "ERROR": "red", "CRITICAL": "bright_red", "buy": "green", "sell": "red"}


def _print_record(kind: str, record, as_json: bool, color: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"kind": kind, **msgspec.to_builtins(record)}))
        return
    if kind == "orders":
        line = (f"{record.ts_init:%Y-%m-%d %H:%M:%S} {record.account} {record.side:<4} {record.qty:.4f} {record.symbol} "
                f"{record.status}" + (f" ({record.reject_reason})" if record.reject_reason else "") + f" {record.client_order_id}")
        key = record.side
    elif kind == "fills":
        line = (f"{record.ts_event:%Y-%m-%d %H:%M:%S} {record.account} {record.side:<4} {fill_text(record)} "
                f"commission {record.commission:.2f}")
        key = record.side
    elif kind == "nav":
        line = (f"{record.ts_event:%Y-%m-%d %H:%M:%S} {record.account} NAV {record.nav:,.2f} cash {record.cash:,.2f} "
                f"leverage {record.leverage:.2f}x")
        key = ""
    elif kind == "signals":
        from botctl.cli.feeds_cmd import signal_line

        line, key = signal_line(record), ""
    else:
        line = (f"{record.ts_event:%Y-%m-%d %H:%M:%S} {record.severity:<8} {record.account or '-'} "
                f"{record.subsystem}/{record.type}" + (f" {record.symbol}" if record.symbol else "")
                + (f": {record.message}" if record.message else ""))
        key = record.severity
    line = printable(line)  # escaped before the colour's own escape codes are added
    typer.echo(typer.style(line, fg=_COLORS.get(key)) if color and key in _COLORS else line)
