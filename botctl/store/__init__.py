"""The SQLite journal (see DESIGN.md, Persistence)."""

from typing import Any

from botctl.store.journal import DuplicateRecord, Store, severities_at_least
from botctl.store.schema import APPLICATION_ID, MIGRATION_NAMES

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "MIGRATION_NAMES",
    "DuplicateRecord",
    "Store",
    "severities_at_least",
]


def __getattr__(name: str) -> Any:
    # MIGRATIONS (the sqlite-utils Migrations set) is built on first access: importing the
    # store must not import sqlite_utils, which is slow (it pulls in pandas).
    if name == "MIGRATIONS":
        from botctl.store.schema import migrations

        return migrations()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
