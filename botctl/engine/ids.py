"""Deterministic client order ids. The same cycle always produces the same id, so a restart
after a crash recognises (and never re-sends) an order that may already be at the broker."""

from __future__ import annotations

from datetime import datetime


def cycle_prefix(namespace: str, account: str, cycle: datetime) -> str:
    """The part shared by every order of one account's cycle. `namespace` is the plan id for
    paper/live (stable across restarts) and the run id for backtests and replays (so runs
    never collide in one journal)."""
    return f"bc-{namespace}-{account[:40]}-{cycle:%Y%m%dT%H%M}"


def client_order_id(prefix: str, symbol: str, side: str, attempt: int = 0) -> str:
    """At most 128 characters, the broker's limit."""
    return f"{prefix}-{symbol}-{side[0]}{attempt}"[:128]
