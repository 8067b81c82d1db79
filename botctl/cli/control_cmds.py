"""`botctl kill` and `botctl resume`: the emergency stop and its release."""

from __future__ import annotations

import getpass
import json
import shlex
import socket
import sys
import time
from datetime import datetime, timezone

import msgspec
import typer

from botctl.cli.common import globals_of, load_plan
from botctl.errors import EXIT_RUNTIME, UsageError
from botctl.records import Control, Event


def _who() -> str:
    """Who acted: user, host and the command line (which never carries a secret)."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}: botctl {shlex.join(sys.argv[1:])}"[:500]


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
        from botctl.store import Store
        from botctl.store.overview import run_view

        g = globals_of(ctx)
        plan = load_plan(g)
        targets = _accounts(plan, account)
        now = datetime.now(timezone.utc)
        who = _who()
        with Store.open(g.db) as store:
            view = run_view(store)
            with store.transaction():
                for acc in targets:
                    store.set_control(Control(account=acc.id, halted=True, reason=reason, since=now, who=who, flatten=flatten))
                    store.insert(Event(ts_event=now, subsystem="control", type="kill.requested", severity="WARN",
                                       account=acc.id, message=f"halt requested by {who}: {reason}",
                                       details={"flatten": flatten}))
            if view.running and not view.stale:
                outcome = _wait_for_ack(store, [a.id for a in targets], timeout)
                body = {"running": True, "pid": view.run.pid, "acknowledged": outcome, "flatten": flatten}
                late = [a for a, ok in outcome.items() if not ok]
                _report(body, as_json, f"bot pid {view.run.pid}: " + ", ".join(
                    f"{a} {'halted' if ok else 'NOT acknowledged'}" for a, ok in outcome.items()))
                if late:
                    typer.echo(f"timeout: no acknowledgement within {timeout:g}s for {', '.join(late)}; "
                               "the halt stays recorded and applies when the bot reads it", err=True)
                    raise typer.Exit(EXIT_RUNTIME)
                return
            from botctl.errors import BotctlError
            from botctl.runtime.offline_kill import kill_offline

            results, failed = [], []
            for acc in targets:
                try:
                    results.append(kill_offline(store, acc, plan.plan_id, flatten=flatten, reason=reason))
                except BotctlError as exc:  # one unreachable broker must not spare the others
                    failed.append({"account": acc.id, "error": str(exc)})
                    store.insert(Event(ts_event=datetime.now(timezone.utc), subsystem="control", type="kill.failed",
                                       severity="ERROR", account=acc.id,
                                       message=f"halt recorded, but acting on the broker failed: {exc}"))
                    continue
                control = store.controls()[acc.id]
                store.set_control(msgspec.structs.replace(control, acked_at=datetime.now(timezone.utc)))
        body = {"running": False, "accounts": results, "failed": failed, "flatten": flatten}
        _report(body, as_json, "no bot running; acted directly:\n" + "\n".join(
            [f"  {r['account']}: halted, {r['canceled']} open order(s) canceled"
             + (f", {r['sold']} position(s) sold" if flatten else "") for r in results]
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
        from botctl.store import Store

        g = globals_of(ctx)
        plan = load_plan(g)
        targets = _accounts(plan, account)
        now = datetime.now(timezone.utc)
        who = _who()
        resumed = []
        with Store.open(g.db) as store, store.transaction():
            controls = store.controls()
            for acc in targets:
                previous = controls.get(acc.id)
                if previous is None or not previous.halted:
                    continue
                store.set_control(Control(account=acc.id, halted=False, reason=f"resumed (was: {previous.reason})",
                                          since=now, who=who))
                store.insert(Event(ts_event=now, subsystem="control", type="resume", account=acc.id,
                                   message=f"halt cleared by {who} (was: {previous.reason})"))
                resumed.append(acc.id)
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
