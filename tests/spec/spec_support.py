"""Shared helpers for the spec tests: write YAML inline, collect problems by location."""

from __future__ import annotations

from textwrap import dedent

from botctl.errors import ConfigError
from botctl.spec.load import Config, load_config

# The symbols "in the market data" for these tests; independent of the bundled parquet.
KNOWN = frozenset({"SPY", "TLT", "XLK", "XLF", "XLE"})


def y(text: str) -> str:
    """Inline YAML: dedented, starting on line 1 (so line numbers in tests are easy to read)."""
    return dedent(text).lstrip("\n")


STRATEGIES = y("""
    universes:
      core: [SPY, TLT, XLK]
    strategies:
      Momo:
        universe: core
        steps:
          - select_momentum: {lookback_days: 126, top: 2}
          - weigh_equally: {}
      Hold:
        universe: [TLT]
        rebalance: weekly
        steps: [select_all, weigh_equally]
""")

ACCOUNTS = y("""
    accounts:
      main:
        models: [Momo, Hold]
""")


def load(strategies: str | bytes = STRATEGIES, accounts: str | bytes = ACCOUNTS, *,
         known: frozenset[str] | None = KNOWN) -> Config:
    return load_config(strategies, accounts, known_symbols=known)


def problems(strategies: str | bytes = STRATEGIES, accounts: str | bytes = ACCOUNTS, *,
             known: frozenset[str] | None = KNOWN) -> dict[str, str]:
    """Every problem reported, as {"FILE:LINE:COL: key.path": message}; {} when the config is valid."""
    try:
        load(strategies, accounts, known=known)
    except ConfigError as exc:
        found: dict[str, str] = {}
        for p in exc.problems:
            where = f"{p.file}:{p.line}:{p.col}: {p.path}"
            found[where] = f"{found[where]} | {p.message}" if where in found else p.message
        return found
    return {}


def assert_problems(found: dict[str, str], expected: dict[str, str]) -> None:
    """Exactly the expected locations are reported, each with a message containing its fragment."""
    assert sorted(found) == sorted(expected), "\n".join(f"{k}: {v}" for k, v in found.items())
    for where, fragment in expected.items():
        assert fragment in found[where], f"{where}: {found[where]!r} lacks {fragment!r}"
