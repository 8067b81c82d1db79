"""`botctl tui`: the full-screen dashboard over the journal (botctl.tui)."""

from __future__ import annotations

import sys

import typer

from botctl.cli.common import globals_of
from botctl.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command()
    def tui(
        ctx: typer.Context,
        account: str = typer.Option(None, "--account", help="Open on this account (default: the first)."),
        refresh: float = typer.Option(5.0, "--refresh", min=0.5, metavar="SECONDS", help="Seconds between refreshes."),
        health_url: str = typer.Option(None, "--health-url", metavar="URL",
                                       help="The bot's health endpoint, e.g. http://127.0.0.1:8787/health.",
                                       show_default="health: in accounts.yaml, while a bot runs"),
    ) -> None:
        """A live dashboard: status, NAV and P&L, positions, orders, performance against the
        benchmark, risk, trades, momentum rankings, errors, and NAV and drawdown charts.

        It reads the journal read-only, in the background, and never holds up the bot. Keys:
        q quit, a next account, r refresh, e errors, k kill, K kill and flatten, u resume, ? help.
        It needs a terminal: with stdin or stdout not a terminal it exits 2 at once (scripts
        read `botctl status --json` or `botctl tail` instead).
        """
        from botctl.tui.app import run_dashboard
        from botctl.tui.data import Source

        g = globals_of(ctx)
        source = Source(g.db, g.config_dir, g.data, health_url=health_url)
        if account is not None:
            known = source.snapshot(market=False).accounts
            if known and account not in known:
                raise UsageError(f"unknown account '{account}' (known: {', '.join(known)})")
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            which = "stdout" if not sys.stdout.isatty() else "stdin"
            raise UsageError(f"botctl tui needs a terminal ({which} is not one); "
                             "for scripts use `botctl status --json` or `botctl tail`")
        run_dashboard(source, account=account, refresh=refresh)
