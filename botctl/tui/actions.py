"""Kill and resume from the dashboard, for the account on screen: the same control rows and
events as `botctl kill` and `botctl resume` (both call botctl.runtime.control). Like
`botctl kill`, with no bot running a kill acts on the broker itself and is acknowledged at
once; with a bot running, the bot acts and acknowledges, which the next refresh shows.
Called from a thread worker: nothing here touches the interface."""

from __future__ import annotations

from pathlib import Path

from botctl.runtime.control import clear_halt, request_halt, who_am_i
from botctl.runtime.control import kill as stop

KILL_REASON = "operator kill"  # as `botctl kill`


def kill(db: Path, plan, account: str, *, flatten: bool, reason: str = KILL_REASON) -> str:
    """Persist a halt for `account` (and act on its broker when no bot runs); a one-line outcome."""
    from botctl.store import Store

    with Store.open(db, create=False) as store:
        acc_plan = next((a for a in plan.accounts if a.id == account), None) if plan is not None else None
        if acc_plan is None:
            request_halt(store, [account], flatten=flatten, reason=reason, who=who_am_i())
            return f"{account}: halt recorded (not in the config, so no broker was touched)"
        holder, done, failed = stop(store, plan, [acc_plan], flatten=flatten, reason=reason, who=who_am_i())
        if holder is not None:
            return f"{account}: halt recorded; bot pid {holder.pid} acts on it within a second"
    if failed:
        return f"{account}: halt recorded, but the broker could not be reached: {failed[0]['error']}"
    sold = f", {done[0]['sold']} position(s) sold" if flatten else ""
    return f"{account}: halted; no bot running, {done[0]['canceled']} open order(s) canceled{sold}"


def resume(db: Path, account: str) -> str:
    """Clear `account`'s halt, as `botctl resume --account` does; a one-line outcome."""
    from botctl.store import Store

    with Store.open(db, create=False) as store:
        resumed = clear_halt(store, [account], who=who_am_i())
    return f"{account}: resumed; trading resumes at the next cycle" if resumed else f"{account}: not halted; nothing to resume"
