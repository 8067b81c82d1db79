"""Deterministic client order ids. The same cycle always produces the same id, so a restart
after a crash recognises (and never re-sends) an order that may already be at the broker."""

from __future__ import annotations

from datetime import datetime


def client_order_id(namespace: str, account: str, cycle: datetime, symbol: str, side: str, attempt: int = 0) -> str:
    """`namespace` is the plan id for paper/live (stable across restarts) and the run id for
    backtests and replays (so runs never collide in one journal). At most 128 characters."""
    return f"bc-{namespace}-{account[:40]}-{cycle:%Y%m%dT%H%M}-{symbol}-{side[0]}{attempt}"[:128]
