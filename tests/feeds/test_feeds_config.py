"""feeds.yaml: every problem with FILE:LINE:COL, secrets from the environment only and never
echoed, and `botctl validate` / `botctl feeds check` read it."""

from __future__ import annotations

import pytest

from botctl.errors import ConfigError
from botctl.spec.feeds import load_feeds

from tests.feeds.feeds_support import PASSPHRASE, SECRET, botctl

GOOD = """\
kinds:
  flow: {weight: 0.6, latency_seconds: 60, ttl_minutes: 1440}
  dark: {weight: 0.4}
sources:
  recorded:
    type: file
    path: signals.csv
    kind: flow
  vendor:
    type: http_poll
    url: https://api.example.com/v1/flow
    auth: {header: Authorization, env: VENDOR_KEY, prefix: "Bearer "}
    items: data
    fields: {id: trade_id, ts_event: executed_at, symbol: ticker, score: premium}
    kind: flow
  hook:
    type: webhook
    port: 8787
    secret_env: HOOK_SECRET
  tv:
    type: webhook
    port: 8788
    mode: passphrase
    secret_env: TV_PASS
  earlier:
    type: journal
"""
ENV = {"VENDOR_KEY": "vendor-key-value-123", "HOOK_SECRET": SECRET, "TV_PASS": PASSPHRASE}


def problems(text: str, env: dict | None = ENV, **kw) -> list[str]:
    try:
        load_feeds(text, environ=env, **kw)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_the_documented_example_loads():
    config = load_feeds(GOOD, environ=ENV)
    assert list(config.sources) == ["recorded", "vendor", "hook", "tv", "earlier"]
    assert config.kinds["flow"].latency_seconds == 60
    assert config.sources["vendor"].fields["ts_event"] == "executed_at"


@pytest.mark.parametrize("change, where, words", [
    (("type: file", "type: ftp"), "feeds.yaml:6:5: sources.recorded.type", "must be one of"),
    (("port: 8787", "port: 70000"), "feeds.yaml:18:5: sources.hook.port", "0-65535"),
    (("port: 8788", "port: 8787"), "feeds.yaml:22:5: sources.tv.port", "already listens"),
    (("kind: flow\n  vendor", "kind: flows\n  vendor"), "feeds.yaml:8:5: sources.recorded.kind", "unknown kind"),
    (("weight: 0.4", "weight: -1"), "feeds.yaml:3:10: kinds.dark.weight", "0 or more"),
    (("items: data", "itemz: data"), "feeds.yaml:13:5: sources.vendor.itemz", "unknown key"),
    (("https://api.example.com/v1/flow", "https://api.example.com/v1/flow?api_key=abc"),
     "feeds.yaml:11:5: sources.vendor.url", "credential in the URL"),
    (("symbol: ticker", "sym: ticker"), "feeds.yaml:14:51: sources.vendor.fields.sym", "not a signal field"),
    (("secret_env: HOOK_SECRET", "secret_env: 1BAD"), "feeds.yaml:19:5: sources.hook.secret_env", "not an environment"),
])
def test_each_problem_names_file_line_and_key(change, where, words):
    found = problems(GOOD.replace(*change, 1))
    assert any(p.startswith(where) and words in p for p in found), found


def test_missing_or_malformed_secrets_are_named_by_variable_never_by_value():
    found = problems(GOOD, {})
    assert any("VENDOR_KEY is not set" in p for p in found)
    assert any("HOOK_SECRET is not set" in p for p in found) and any("TV_PASS is not set" in p for p in found)
    bad = problems(GOOD, {**ENV, "HOOK_SECRET": "not-a-whsec-value-but-secret", "TV_PASS": "short"})
    assert any(p.startswith("feeds.yaml:19:5") and "whsec_" in p for p in bad), bad
    assert any(p.startswith("feeds.yaml:24:5") and "at least 12" in p for p in bad), bad
    assert all("not-a-whsec-value-but-secret" not in p and "short'" not in p for p in bad)
    assert problems(GOOD, None) == []  # a backtest needs no secrets


def test_symbols_are_checked_against_the_market_data():
    found = problems("symbols: [SPY, NOPE]\n", known_symbols={"SPY"})
    assert found == ["feeds.yaml:1:16: symbols[1]: unknown symbol 'NOPE' (not in the available market data)"]


def test_validate_and_feeds_check_read_feeds_yaml(config_dir, tmp_path):
    (config_dir / "feeds.yaml").write_text(GOOD)
    db = tmp_path / "j.db"
    done = botctl(config_dir, db, "validate", env={k: "" for k in ENV})
    assert done.returncode == 4, done.stderr
    assert "feeds.yaml:12:35: sources.vendor.auth.env: environment variable VENDOR_KEY is not set" in done.stderr
    done = botctl(config_dir, db, "validate", env=ENV)
    assert done.returncode == 0, done.stderr
    assert "5 signal feed source(s)" in done.stdout
    done = botctl(config_dir, db, "feeds", "check", env=ENV)
    assert done.returncode == 0 and "source hook: webhook http://127.0.0.1:8787/signals" in done.stdout
    assert all(value not in done.stdout + done.stderr for value in ENV.values())
    (config_dir / "feeds.yaml").write_text("sources: [1, 2]\n")
    done = botctl(config_dir, db, "feeds", "check", "--json", env=ENV)
    assert done.returncode == 4 and "feeds.yaml:1:1: sources: expected a mapping, got a list" in done.stdout, done.stdout
