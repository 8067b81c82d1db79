"""Kill and resume from the dashboard: the same `control` rows and events as `botctl kill` and
`botctl resume` (botctl/cli/control_cmds.py), for the account on screen.

The CLI keeps that logic inside its typer commands, so it is mirrored here in two small
functions (the report to the lead proposes moving both into botctl.runtime.control, shared).
Like `botctl kill`, with no live bot a kill acts on the broker itself (kill_offline) and is
acknowledged at once; with a bot running, the bot acts and acknowledges, which the next
refresh shows. Called from a thread worker: nothing here touches the interface.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import msgspec

from botctl.records import Control, Event

KILL_REASON = "operator kill"  # as `botctl kill`; `who` names the dashboard


def _who() -> str:
    from botctl.cli.control_cmds import _who as who

    return who()


def kill(db: Path, plan, account: str, *, flatten: bool, reason: str = KILL_REASON) -> str:
    """Persist a halt for `account` (and act on its broker when no bot runs); a one-line outcome."""
    from botctl.store import Store
    from botctl.store.overview import run_view

    now = datetime.now(timezone.utc)
    who = _who()
    with Store.open(db, create=False) as store:
        view = run_view(store)
        with store.transaction():
            store.set_control(Control(account=account, halted=True, reason=reason, since=now, who=who, flatten=flatten))
            store.insert(Event(ts_event=now, subsystem="control", type="kill.requested", severity="WARN",
                               account=account, message=f"halt requested by {who}: {reason}",
                               details={"flatten": flatten}))
        if view.running and not view.stale:
            return f"{account}: halt recorded; bot pid {view.run.pid} acts on it within a second"
        acc_plan = next((a for a in plan.accounts if a.id == account), None) if plan is not None else None
        if acc_plan is None:
            return f"{account}: halt recorded (not in the config, so no broker was touched)"
        from botctl.runtime.offline_kill import kill_offline

        result = kill_offline(store, acc_plan, plan.plan_id, flatten=flatten, reason=reason)
        control = store.controls()[account]
        store.set_control(msgspec.structs.replace(control, acked_at=datetime.now(timezone.utc)))
    sold = f", {result['sold']} position(s) sold" if flatten else ""
    return f"{account}: halted; no bot running, {result['canceled']} open order(s) canceled{sold}"


def resume(db: Path, account: str) -> str:
    """Clear `account`'s halt, as `botctl resume --account` does; a one-line outcome."""
    from botctl.store import Store

    now = datetime.now(timezone.utc)
    who = _who()
    with Store.open(db, create=False) as store, store.transaction():
        previous = store.controls().get(account)
        if previous is None or not previous.halted:
            return f"{account}: not halted; nothing to resume"
        store.set_control(Control(account=account, halted=False, reason=f"resumed (was: {previous.reason})",
                                  since=now, who=who))
        store.insert(Event(ts_event=now, subsystem="control", type="resume", account=account,
                           message=f"halt cleared by {who} (was: {previous.reason})"))
    return f"{account}: resumed; trading resumes at the next cycle"
