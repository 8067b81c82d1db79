from __future__ import annotations

import pytest
from receiver import Receiver


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def receiver2():
    r = Receiver().start()
    yield r
    r.stop()
