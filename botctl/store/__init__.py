"""The SQLite journal (see DESIGN.md, Persistence)."""

from botctl.store.journal import DuplicateRecord, Store, severities_at_least
from botctl.store.schema import APPLICATION_ID, MIGRATIONS

__all__ = ["APPLICATION_ID", "MIGRATIONS", "DuplicateRecord", "Store", "severities_at_least"]
