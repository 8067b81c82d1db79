from __future__ import annotations

import pytest
from store_factories import make_run

from botctl.store import Store


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "botctl.db"


@pytest.fixture
def store(db_path):
    s = Store.open(db_path)
    s.upsert_run(make_run())
    yield s
    s.close()

