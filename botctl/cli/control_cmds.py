"""`botctl kill` and `botctl resume`: the emergency stop and its release."""

from __future__ import annotations

import json
import time

import typer

from botctl.cli.common import globals_of, load_plan
from botctl.errors import EXIT_RUNTIME, UsageError


def _accounts(plan, wanted: list[str] | None):
    known = [a.id for a in plan.accounts]
    for account in wanted or []:
        if account not in known:
            raise UsageError(f"unknown account '{account}' (accounts.yaml has: {', '.join(known)})")
    return [a for a in plan.accounts if not wanted or a.id in wanted]


def register(app: typer.Typer) -> None:
    @app.command()
    def kill(
        ctx: typer.Context,
        account: list[str] = typer.Option(None, "--account", help="Only these accounts (default: all)."),
        flatten: bool = typer.Option(False, "--flatten", help="Also sell every position at market."),
        reason: str = typer.Option("operator kill", "--reason", help="Why; recorded with the halt."),
        timeout: float = typer.Option(10.0, "--timeout", min=0.0, help="Seconds to wait for a running bot to act."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    ) -> None:
        """Emergency stop: halt trading (persisted), cancel open orders, and with --flatten close
        every position. A running bot acts within a second and acknowledges; with no bot running,
        botctl acts on each account's broker itself. The halt holds until `botctl resume`."""
        from botctl.runtime.control import kill as stop, who_am_i
        from botctl.store import Store

        g = globals_of(ctx)
        plan = load_plan(g)
        targets = _accounts(plan, account)
        with Store.open(g.db) as store:
            # Whether a bot runs is whether a process holds the journal's writer lock, not what
            # the newest run row says (a stale heartbeat, a paced replay, a backtest after it).
            holder, results, failed = stop(store, plan, targets, flatten=flatten, reason=reason, who=who_am_i())
            if holder is not None:
                outcome = _wait_for_ack(store, [a.id for a in targets], timeout)
                body = {"running": True, "pid": holder.pid, "acknowledged": outcome, "flatten": flatten}
                late = [a for a, ok in outcome.items() if not ok]
                _report(body, as_json, f"bot pid {holder.pid}: " + ", ".join(
                    f"{a} {'halted' if ok else 'NOT acknowledged'}" for a, ok in outcome.items()))
                if late:
                    typer.echo(f"timeout: no acknowledgement within {timeout:g}s for {', '.join(late)} from "
                               f"{holder.describe()}; the halt stays recorded and applies when it reads it", err=True)
                    raise typer.Exit(EXIT_RUNTIME)
                return
        body = {"running": False, "accounts": results, "failed": failed, "flatten": flatten}
        _report(body, as_json, "no bot running; acted directly:\n" + "\n".join(
            [f"  {r['account']}: halted, {r['canceled']} open order(s) canceled"
             + (f", {r['sold']} position(s) sold" if flatten else "")
             + (f" ({r['note']})" if flatten and r.get("note") else "") for r in results]
            + [f"  {f['account']}: halted, but the broker could not be reached: {f['error']}" for f in failed]))
        if failed:
            raise typer.Exit(EXIT_RUNTIME)

    @app.command()
    def resume(
        ctx: typer.Context,
        account: list[str] = typer.Option(None, "--account", help="Only these accounts (default: all)."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    ) -> None:
        """Clear the halt (from kill or a circuit breaker): trading resumes at the next cycle."""
        from botctl.runtime.control import clear_halt, who_am_i
        from botctl.store import Store

        g = globals_of(ctx)
        plan = load_plan(g)
        targets = _accounts(plan, account)
        with Store.open(g.db) as store:
            resumed = clear_halt(store, [a.id for a in targets], who=who_am_i())
        _report({"resumed": resumed}, as_json,
                f"resumed: {', '.join(resumed)}" if resumed else "nothing to resume: no account was halted")


def _wait_for_ack(store, accounts: list[str], timeout: float) -> dict[str, bool]:
    deadline = time.monotonic() + timeout
    while True:
        controls = store.controls()
        outcome = {a: controls[a].acked_at is not None for a in accounts}
        if all(outcome.values()) or time.monotonic() >= deadline:
            return outcome
        time.sleep(0.1)


def _report(body: dict, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(body) if as_json else text)
