"""`botctl validate` and `botctl plan`."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import typer

from botctl.cli.common import globals_of, load_config, load_plan, out, parse_date


def next_rebalances(schedule, today: date, count: int = 3) -> list[date]:
    from botctl.adapters.calendar import sessions
    from botctl.strategy.schedule import rebalance_sessions

    days = [s.day for s in sessions(today - timedelta(days=120), today + timedelta(days=500))]
    return [d for d in rebalance_sessions(days, schedule) if d >= today][:count]


def describe_schedule(schedule) -> str:
    ordinal = {1: "1st", 2: "2nd", 3: "3rd"}.get(schedule.day, f"{schedule.day}th")
    unit = {"daily": None, "weekly": "week", "monthly": "month", "quarterly": "quarter"}[schedule.every]
    when = "every session" if unit is None else f"{ordinal} session of each {unit}"
    return f"{when}, {schedule.after_open_minutes} min after the open"


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(ctx: typer.Context) -> None:
        """Check strategies.yaml, accounts.yaml (and notify.yaml, feeds.yaml if present); print every problem as FILE:LINE:COL: key: message (exit 4)."""
        g = globals_of(ctx)
        config = load_config(g)
        from botctl.notify.setup import read_notify

        # notify.yaml too, when there is one: its URLs' {env:NAME}s must be set where the bot runs.
        notify = read_notify(g.config_dir, known_accounts=list(config.accounts.accounts))
        extra = f", {len(notify.destinations)} notify destination(s)" if notify is not None else ""
        from botctl.feeds.runner import feeds_path, read_feeds

        # feeds.yaml too: its sources' secrets must be set where the bot runs, like notify's.
        if feeds_path(g.config_dir).exists():
            from botctl.adapters.file_data import available_symbols

            feeds = read_feeds(g.config_dir, known_symbols=available_symbols(g.data))
            extra += f", {len(feeds.sources)} signal feed source(s)" if feeds is not None else ""
        typer.echo(f"ok: {len(config.strategies.strategies)} strategies, {len(config.accounts.accounts)} accounts{extra}")

    @app.command()
    def plan(
        ctx: typer.Context,
        as_json: bool = typer.Option(False, "--json", help="Print the plan as one JSON object."),
        model: list[str] = typer.Option(None, "--model", help="Keep only these models (budgets are redistributed)."),
        account: list[str] = typer.Option(None, "--account", help="Keep only these accounts."),
        as_of: str = typer.Option(None, "--as-of", help="Date to compute the next rebalances from (default: today in New York)."),
    ) -> None:
        """Print the compiled plan: accounts, models, budgets, universes, schedules and next rebalance dates."""
        compiled = load_plan(globals_of(ctx), models=model or None, accounts=account or None)
        today = parse_date(as_of, "--as-of") or datetime.now(ZoneInfo("America/New_York")).date()
        upcoming = {m.name: next_rebalances(m.schedule, today) for a in compiled.accounts for m in a.models}
        if as_json:
            body = msgspec.to_builtins(compiled)
            for account_body in body["accounts"]:
                for model_body in account_body["models"]:
                    model_body["next_rebalances"] = [d.isoformat() for d in upcoming[model_body["name"]]]
            typer.echo(json.dumps(body, indent=2))
            return
        out(f"plan {compiled.plan_id}  (benchmark {compiled.benchmark}; next dates from {today})")
        for acc in compiled.accounts:
            out()
            out(f"account {acc.id}: broker {acc.broker}, mode {acc.mode}, data {acc.data}"
                       + (f", starting cash ${acc.starting_cash:,.0f}" if acc.broker == "sim" else
                          f", keys from ${acc.api_key_env} / ${acc.secret_key_env}"))
            out(f"  symbols: {' '.join(acc.symbols)}")
            r = acc.risk
            out(f"  risk: max weight {r.max_weight:.0%}, max gross leverage {r.max_gross_leverage:g}x, "
                       f"max order ${r.max_order_notional:,.0f} / {r.max_order_pct_nav:.0%} of NAV, "
                       f"collar {r.price_collar_pct:.0%}, {r.max_orders_per_cycle}/cycle, {r.max_orders_per_day}/day, "
                       f"cooldown {r.cooldown_minutes} min, data <= {r.max_data_age_days} days old")
            out(f"  breakers: drawdown {r.max_drawdown:.0%}, daily loss {r.max_daily_loss:.0%}, "
                       f"{r.max_rejects} rejects in {r.reject_window_minutes} min")
            for m in acc.models:
                steps = ", ".join(s.__struct_config__.tag for s in m.steps)
                out(f"  model {m.name}: budget {m.budget:.1%}")
                out(f"    universe: {' '.join(m.universe)}")
                out(f"    rebalance: {describe_schedule(m.schedule)}")
                out(f"    steps: {steps}")
                out(f"    next: {', '.join(d.isoformat() for d in upcoming[m.name]) or 'none in the calendar'}")
