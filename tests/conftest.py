from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped strategies.yaml and accounts.yaml, free to edit."""
    folder = tmp_path / "config"
    folder.mkdir()
    for name in ("strategies.yaml", "accounts.yaml"):
        shutil.copy(REPO_ROOT / name, folder / name)
    return folder


@pytest.fixture(autouse=True, scope="session")
def _no_default_health_port():
    """Runs started by tests (in-process or as subprocesses) serve no health endpoint unless a
    test asks for one with --health-port: the shipped port may be taken on the machine."""
    import os

    previous = os.environ.get("BOTCTL_HEALTH_PORT")
    os.environ["BOTCTL_HEALTH_PORT"] = "0"
    yield
    if previous is None:
        os.environ.pop("BOTCTL_HEALTH_PORT", None)
    else:
        os.environ["BOTCTL_HEALTH_PORT"] = previous


@pytest.fixture
def refusing():
    """`refusing(broker, refuse)` makes a SimBroker refuse each order `refuse(order)` gives a
    reason for (None: the simulator takes it): its batches then go one order at a time, as to
    a broker over the network, and stop at the first refusal like any broker's."""
    import msgspec

    from botctl.engine.orders import PlacedOrders
    from botctl.ports import submit_each

    def install(broker, refuse):
        take = broker.submit_batch

        def submit(order, now):
            reason = refuse(order)
            if reason is None:
                answers = take(PlacedOrders.of(order), now)
                return answers.order(0), answers.fills(0)
            return msgspec.structs.replace(order, status="rejected", ts_event=now, reject_reason=reason), []

        broker.submit_batch = lambda placed, now: submit_each(submit, placed, now)

    return install
