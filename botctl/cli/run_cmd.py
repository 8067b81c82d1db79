"""`botctl run`: the scheduler. `--replay START:END` drives it on a simulated clock."""

from __future__ import annotations

import math
import sys
from datetime import date
from pathlib import Path

import typer

from botctl.cli.common import err, globals_of, load_plan, out, parse_date
from botctl.errors import EXIT_RUNTIME, UsageError


def parse_replay(value: str, data_end: date) -> tuple[date, date]:
    if ":" not in value:
        raise UsageError(f"--replay expects START:END (e.g. 2020-01-01:2024-12-31 or 2020-01-01:), got {value!r}")
    start_s, end_s = value.split(":", 1)
    start = parse_date(start_s or None, "--replay START") or date(2015, 1, 1)
    end = parse_date(end_s or None, "--replay END") or data_end
    if start > end:
        raise UsageError(f"--replay start {start} is after end {end}")
    return start, end


# --speed bounds, in simulated seconds per real second. 1 is real time (a weekend then takes a
# weekend); below it a replay would crawl for days. Above 1e9 the pauses are nanoseconds:
# use `max`, which does not pause at all.
MIN_SPEED, MAX_SPEED = 1.0, 1e9


def parse_speed(value: str) -> float | None:
    if value.strip().lower() == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        speed = math.nan
    if not MIN_SPEED <= speed <= MAX_SPEED:  # also refuses nan and inf
        raise UsageError(f"--speed expects simulated seconds per real second from {MIN_SPEED:g} (real time) to "
                         f"{MAX_SPEED:g}, or 'max', got {value!r}")
    return speed


class Progress:
    """Days done / total and NAV per account: one rewritten line on a terminal, a line every
    ~5% otherwise (logs stay short)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last_pct = -1

    def __call__(self, done: int, total: int, day: date, navs: dict[str, float]) -> None:
        pct = done * 100 // total
        navs_text = "  ".join(f"{a} ${v:,.0f}" for a, v in navs.items())
        line = f"[{done}/{total} {pct:3d}%] {day}  {navs_text}"
        if self.tty:
            sys.stderr.write("\r" + line[:200] + ("\n" if done == total else ""))
            sys.stderr.flush()
        elif pct // 5 != self.last_pct // 5 or done == total:
            err(line)
        self.last_pct = pct


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        ctx: typer.Context,
        replay: str = typer.Option(None, "--replay", metavar="START:END",
                                   help="Replay history on a simulated clock over the XNYS calendar (END may be empty: to the end of the data)."),
        speed: str = typer.Option("max", "--speed", help="Simulated seconds per real second, 1 (real time) to 1e9 (86400: a day a second), or 'max'."),
        account: list[str] = typer.Option(None, "--account", help="Only these accounts (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help="Print the closing summary as JSON."),
        once: bool = typer.Option(False, "--once", help="Reconcile, rebalance every account now if the market is open, mark NAV, exit (1 if an account could not trade)."),
        live: bool = typer.Option(False, "--live", help="Required, with mode: live in accounts.yaml, to trade real money."),
        yes: bool = typer.Option(False, "--yes", help="Skip the first-cycle turnover check (max_first_cycle_turnover)."),
        cache_dir: Path = typer.Option(Path("data-cache"), "--cache-dir", envvar="BOTCTL_CACHE_DIR",
                                       help="Where bars fetched from Alpaca are cached as parquet."),
        health_port: int = typer.Option(None, "--health-port", min=0, max=65535, envvar="BOTCTL_HEALTH_PORT",
                                        help="Serve /health and /metrics on this port (0: off).",
                                        show_default="health.port in accounts.yaml; off for --replay and --once"),
    ) -> None:
        """Run the plan: every account in one process, journaling everything to the database.

        With --replay, the scheduler runs over past sessions with the simulated broker, writing
        the journal exactly as live trading would; status, tail and tui show it.
        """
        from botctl.adapters.file_data import scan_bars
        from botctl.runtime.replay import run_replay
        from botctl.store import Store
        from botctl.strategy.bars import bars_from_frame

        g = globals_of(ctx)
        if replay is None:
            _run_trading(g, account, once=once, live=live, yes=yes, cache_dir=cache_dir, as_json=as_json,
                         health_port=health_port)
            return
        if once or live:
            raise UsageError("--once and --live are for trading, not for --replay")
        pace = parse_speed(speed)
        plan = load_plan(g, accounts=account or None)
        bars = bars_from_frame(scan_bars(g.data), plan.symbols)  # only the plan's columns are read
        start, end = parse_replay(replay, bars.dates[-1])
        # An offline replay needs no port unless asked for one (--health-port N): two replays,
        # or anything else on health.port, must not make it fail.
        telemetry, server = _health(plan, health_port or 0)
        from botctl.feeds.plan_scores import refused_lines, scores_for_history
        from botctl.notify.setup import for_run

        scores, refused = scores_for_history(plan, bars, g.config_dir, g.db)  # signal books' external signals
        for line in refused_lines(refused):
            err(line)

        # A rehearsal: a crash of the process loses nothing (WAL), a power cut may lose its last
        # sessions, which the replay makes again; fsync per commit doubled its time.
        with Store.open(g.db, trading=True, durable=False) as store, server, for_run(g, plan, store, telemetry, bars=bars, every_account=not account):
            summary = run_replay(plan, bars, store, start, end, speed=pace, progress=Progress(), telemetry=telemetry,
                                 health=server or None, external_scores=scores)
        if as_json:
            import json

            import msgspec

            typer.echo(json.dumps(msgspec.to_builtins(summary)))
            return
        out(f"replay {summary.status}: {summary.sessions} sessions {summary.start} .. {summary.end} (run {summary.run_id})")
        for acc, nav in summary.navs.items():
            pnl, ret = summary.total_pnl.get(acc), summary.total_return.get(acc)
            since = (f", total P&L ${pnl:+,.2f} ({ret:+.2%}) on ${summary.invested[acc]:,.2f} put in"
                     if pnl is not None and ret is not None else "")
            out(f"  {acc}: NAV ${nav:,.2f}{since}, {summary.orders[acc]} orders")
        where = "" if str(g.db) == "botctl.db" else f" --db {g.db}"
        out(f"journal: {g.db}  (see: botctl{where} status, botctl{where} tail, botctl{where} tui)")


def _run_trading(g, account, *, once: bool, live: bool, yes: bool, cache_dir: Path, as_json: bool,
                 health_port: int | None) -> None:
    import json
    import os

    from botctl.runtime.trading import LiveClock, check_live_opt_in, could_not_trade, run_trading
    from botctl.store import Store

    plan = load_plan(g, accounts=account or None)
    check_live_opt_in(plan, live)
    # The only place BOTCTL_CLOCK is read: a rehearsal on a simulated clock (README).
    clock = LiveClock(os.environ.get("BOTCTL_CLOCK"))
    telemetry, server = _health(plan, 0 if once else plan.health.port if health_port is None else health_port)
    # One line per cycle and the next wake-up, on stdout unless stdout carries the JSON answer.
    log = err if as_json else out  # cycle lines carry account names and broker texts: escaped
    from botctl.notify.setup import for_run

    from botctl.feeds.runner import feeds_for_run  # external signal feeds (feeds.yaml), journaled beside trading

    with Store.open(g.db, trading=True) as store, server, for_run(g, plan, store, telemetry, cache_dir=cache_dir, every_account=not account), \
            feeds_for_run(g.config_dir, store, plan.symbols, echo=log, clock=clock) as feeds:
        from botctl.feeds.plan_scores import LiveScores

        if feeds is not None:
            telemetry.signals_from(feeds)  # /metrics counts what the sources received
        scores = LiveScores(plan, g.config_dir, store, stale=feeds.stale_since if feeds is not None else None,
                            now=clock.now)
        outcome = run_trading(plan, store, once=once, data_path=g.data, cache_dir=cache_dir, confirm_first_cycle=yes,
                              echo=log, clock=clock, telemetry=telemetry, health=server or None,
                              external_scores=scores,
                              started=(lambda trader: feeds.attach_run(trader.run.run_id)) if feeds is not None else None)
    if as_json:
        typer.echo(json.dumps(outcome))
    else:
        out(f"run {outcome['run_id']} {outcome['status']}")
        for acc, what in outcome["accounts"].items():
            out(f"  {acc}: {what}")
    failed = [acc for acc, what in outcome["accounts"].items() if could_not_trade(what)]
    if failed:  # --once is often run by a scheduler: an account that could not trade must not look fine
        err(f"error: {len(failed)} of {len(outcome['accounts'])} account(s) could not trade: {', '.join(failed)} "
            "(see botctl status, or botctl tail --severity WARN)")
        raise typer.Exit(EXIT_RUNTIME)


class _NoServer:
    """What `_health` gives when no endpoint is served: a context that does nothing, and false."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None

    def __bool__(self) -> bool:
        return False


def _health(plan, port: int):
    """The run's Telemetry and its health server on `port` (0: none). Says where it listens,
    and warns when that is beyond this machine."""
    from botctl.runtime.health import HealthServer, Telemetry, exposure_warning, health_token

    telemetry = Telemetry({a.id: {"broker": a.broker, "mode": a.mode, "models": [m.name for m in a.models]}
                           for a in plan.accounts})
    if not port:
        return telemetry, _NoServer()
    server = HealthServer(telemetry, plan.health.host, port, token=health_token(plan.health.token_env))
    err(f"health: {server.address}/health and /metrics" + (" (bearer token required)" if plan.health.token_env else ""))
    if server.exposed:
        err("warning: " + exposure_warning(plan.health.host))
    return telemetry, server
