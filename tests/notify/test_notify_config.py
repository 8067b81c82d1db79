"""notify.yaml: every problem is a config error naming FILE:LINE:COL; secrets stay out of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from notify_support import SECRET, config

from botctl.errors import ConfigError
from botctl.spec.notify import EVENT_TYPES, MESSAGE_TYPES

GOOD = """\
destinations:
  phone:
    url: "tgram://{env:TG_TOKEN}/12345"
  hook:
    url: "json://127.0.0.1:9/{env:HOOK}"
routes:
  - to: phone
    severity: ERROR
  - to: [hook]
    events: [orders.rebalance, daily.summary, "reconcile.*"]
    accounts: [main]
"""
ENV = {"TG_TOKEN": "123456789:ABCdefGhIJKlmnoPQRsTUVwxyZ", "HOOK": SECRET}


def problems(text: str, environ=ENV) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config(text, environ)
    return [str(p) for p in info.value.problems]


def test_a_good_file_resolves_urls_and_shows_them_masked():
    cfg = config(GOOD, ENV)
    assert cfg.destinations["hook"].url == f"json://127.0.0.1:9/{SECRET}"
    assert cfg.destinations["hook"].shown == "json://127.0.0.1:9/{env:HOOK}"
    assert cfg.destinations_for("breaker.tripped", "CRITICAL", "main") == ["phone"]
    assert cfg.destinations_for("orders.rebalance", "INFO", "main") == ["hook"]
    assert cfg.destinations_for("orders.rebalance", "INFO", "other") == []  # hook is for main only
    assert cfg.destinations_for("reconcile.failed", "ERROR", "main") == ["phone", "hook"]
    assert cfg.destinations_for("market.closed", "INFO", "main") == []


@pytest.mark.parametrize("text, where, words", [
    (GOOD.replace("tgram://", "tgramx://"), "notify.yaml:3:5", "unknown notification scheme 'tgramx://'"),
    (GOOD.replace("{env:HOOK}", "{env:NOT_SET_ANYWHERE}"), "notify.yaml:5:5", "NOT_SET_ANYWHERE is not set"),
    (GOOD.replace("reconcile.*", "reconcile.exploded"), "notify.yaml:10:47", "no event type 'reconcile.exploded'"),
    (GOOD.replace("severity: ERROR", "severity: LOUD"), "notify.yaml:8:5", "unknown severity 'LOUD'"),
    (GOOD.replace("to: phone", "to: pager"), "notify.yaml:7:5", "unknown destination 'pager'"),
    (GOOD.replace("accounts: [main]", "accounts: [nosuch]"), "notify.yaml:11:16", "unknown account 'nosuch'"),
    (GOOD.replace("tgram://{env:TG_TOKEN}/12345", "tgram://123456789:ABCdefGhIJKlmnoPQRsTUVwxyZ/12345"),
     "notify.yaml:3:5", "must come from the environment"),
    (GOOD + "colour: red\n", "notify.yaml:12:1", "unknown key"),
    (GOOD + "quiet_hours: {start: '25:00', end: '07:00'}\n", "notify.yaml:12:15", "expected a time like 22:00"),
])
def test_bad_config_names_file_line_and_col(text, where, words):
    found = problems(text)
    assert any(p.startswith(where) and words in p for p in found), found


def test_no_routes_is_an_error_and_the_value_of_a_secret_is_never_echoed():
    text = GOOD.split("routes:")[0]
    found = problems(text)
    assert any("no routes" in p for p in found)
    bad = problems(GOOD, {**ENV, "TG_TOKEN": "not-a-bot-token-" + SECRET})
    assert any(p.startswith("notify.yaml:3:5") and "not a valid tgram:// URL" in p for p in bad), bad
    assert all(SECRET not in p for p in bad)


def test_every_event_type_the_code_journals_is_known_to_the_routes():
    """Routes are checked against EVENT_TYPES: an event type added to the code without it
    could never be routed."""
    package = Path(__file__).resolve().parents[2] / "botctl"
    literal = re.compile(r"""(?:type=|event\()\s*f?["']([a-z_]+\.[a-z_{}.]+|resume)["']""")
    found: set[str] = set()
    for path in package.rglob("*.py"):
        if "notify" in path.relative_to(package).parts:
            continue
        for name in literal.findall(path.read_text()):
            found |= {name.replace("{status}", s) for s in ("finished", "failed", "stopped")} if "{" in name else {name}
    assert found, "the scan found no event types"
    assert found <= EVENT_TYPES, sorted(found - EVENT_TYPES)
    assert EVENT_TYPES < MESSAGE_TYPES


def test_validate_checks_notify_yaml_beside_the_other_files(tmp_path):
    """`botctl validate` reports notify.yaml's problems with FILE:LINE:COL (exit 4) and never
    echoes a secret; a good file is counted in its ok line."""
    import os
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    for name in ("strategies.yaml", "accounts.yaml"):
        shutil.copy(repo / name, tmp_path / name)
    (tmp_path / "notify.yaml").write_text(GOOD.replace("orders.rebalance", "bogus.event"))
    env = {k: v for k, v in os.environ.items() if k not in ENV} | {"TG_TOKEN": ENV["TG_TOKEN"]}
    argv = [sys.executable, "-m", "botctl", "--config-dir", str(tmp_path), "validate"]
    bad = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 4, bad.stderr
    assert re.search(r"^notify\.yaml:5:\d+: destinations\.hook\.url: environment variable HOOK is not set", bad.stderr, re.M)
    assert re.search(r"^notify\.yaml:10:\d+: routes\[1\]\.events\[0\]: no event type 'bogus.event'", bad.stderr, re.M)
    assert ENV["TG_TOKEN"] not in bad.stdout + bad.stderr
    (tmp_path / "notify.yaml").write_text(GOOD.replace("accounts: [main]", "accounts: [rotation-sim]"))
    good = subprocess.run(argv, env=env | {"HOOK": SECRET}, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "ok: 5 strategies, 3 accounts, 2 notify destination(s)"
    assert SECRET not in good.stdout + good.stderr
