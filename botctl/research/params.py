"""Parameter paths: which value of the config a sweep varies, and how a value is set.

Two forms, both written as in `--vary PATH=V1,V2,...`:

- `MODEL.STEP.PARAM`: a parameter of a strategy's step, e.g.
  `SectorRotationModel_v1.select_momentum.lookback_days`. STEP is the step's name; when a
  model has the same step twice, `STEP#2` names the second one.
- `ACCOUNT.risk.KEY` / `ACCOUNT.sim.KEY`: an account's risk limit or simulated-broker setting,
  e.g. `rotation-sim.risk.max_gross_leverage`.

Values are set on the parsed YAML before it is decoded (spec.load_config's `edit` hook), so
every check the config files get applies to every trial. Nothing here does I/O.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec
import yaml

from botctl.errors import UsageError
from botctl.spec.model import RiskSpec, SimSpec
from botctl.spec.steps import STEP_TYPES

ACCOUNT_SECTIONS: dict[str, type[msgspec.Struct]] = {"risk": RiskSpec, "sim": SimSpec}
_STEP = re.compile(r"^(?P<kind>[a-z_]+)(?:#(?P<nth>[1-9][0-9]*))?$")

Value = int | float | str | bool | None


class ParamPath(msgspec.Struct, frozen=True):
    """One parsed path. `owner` is a model (kind 'step') or an account (kind 'risk'/'sim')."""

    text: str  # as written
    kind: str  # 'step', 'risk' or 'sim'
    owner: str
    section: str  # the step name, or 'risk'/'sim'
    nth: int  # which occurrence of the step (1-based); 1 for accounts
    key: str


def field_names(struct: type[msgspec.Struct]) -> list[str]:
    return [f.encode_name for f in msgspec.structs.fields(struct)]


def parse_path(text: str, strategies: dict[str, Any], accounts: dict[str, Any]) -> ParamPath:
    """Check a path against the parsed config files; UsageError names what is wrong."""
    parts = text.split(".")
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"parameter path {text!r}: expected MODEL.STEP.PARAM or ACCOUNT.risk.KEY "
                         "(e.g. SectorRotationModel_v1.select_momentum.lookback_days)")
    owner, section, key = parts
    if section in ACCOUNT_SECTIONS and owner in accounts:
        allowed = field_names(ACCOUNT_SECTIONS[section])
        if key not in allowed:
            raise UsageError(f"parameter path {text!r}: {section} has no setting {key!r} "
                             f"(expected one of: {', '.join(allowed)})")
        return ParamPath(text, section, owner, section, 1, key)
    if owner not in strategies:
        known = ", ".join([*strategies, *(f"{a}.risk" for a in accounts)])
        raise UsageError(f"parameter path {text!r}: no model or account {owner!r} (known: {known})")
    match = _STEP.match(section)
    if not match or match["kind"] not in STEP_TYPES:
        raise UsageError(f"parameter path {text!r}: {section!r} is not a step name "
                         f"(expected one of: {', '.join(STEP_TYPES)})")
    kind, nth = match["kind"], int(match["nth"] or 1)
    found = [i for i, item in enumerate(_steps_of(strategies[owner])) if _step_kind(item) == kind]
    if not found:
        raise UsageError(f"parameter path {text!r}: model {owner} has no {kind} step")
    if len(found) > 1 and match["nth"] is None:
        raise UsageError(f"parameter path {text!r}: model {owner} has {len(found)} {kind} steps; "
                         f"write {kind}#1 .. {kind}#{len(found)}")
    if nth > len(found):
        raise UsageError(f"parameter path {text!r}: model {owner} has only {len(found)} {kind} step(s)")
    allowed = [name for name in field_names(STEP_TYPES[kind]) if name != "step"]
    if key not in allowed:
        raise UsageError(f"parameter path {text!r}: step {kind} has no parameter {key!r} "
                         f"(expected one of: {', '.join(allowed) or 'none'})")
    return ParamPath(text, "step", owner, kind, nth, key)


def _steps_of(strategy: Any) -> list[Any]:
    steps = strategy.get("steps") if isinstance(strategy, dict) else None
    return steps if isinstance(steps, list) else []


def _step_kind(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and len(item) == 1:
        return str(next(iter(item)))
    return None


def parse_value(text: str) -> Value:
    """A value as YAML reads it: `63` an int, `1.5` a float, `true` a bool, `cash` text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"value {text!r}: must be a finite number")
    if value is not None and not isinstance(value, (int, float, str, bool)):
        # a list, a mapping, a date: quote it ('"2020-01-01"') if it is meant as text
        raise UsageError(f"value {text!r}: a parameter value is one number, true/false or a word")
    return value


def parse_vary(option: str) -> tuple[str, list[Value]]:
    """`PATH=V1,V2,...` -> (PATH, values); UsageError on an empty list or a repeated value."""
    path, sep, rest = option.partition("=")
    path = path.strip()
    if not sep or not path:
        raise UsageError(f"--vary {option!r}: expected PATH=V1,V2,... "
                         "(e.g. SectorRotationModel_v1.select_momentum.lookback_days=63,126)")
    texts = [t.strip() for t in rest.split(",") if t.strip()]
    if not texts:
        raise UsageError(f"--vary {path}: no values given (the grid would be empty)")
    values = [parse_value(t) for t in texts]
    if len(set(map(repr, values))) != len(values):
        raise UsageError(f"--vary {path}: a value is listed twice")
    return path, values


def apply(params: dict[str, Value], strategies_value: Any, accounts_value: Any) -> None:
    """Set each parameter in the parsed (not yet decoded) config values, in place."""
    strategies = strategies_value.get("strategies") if isinstance(strategies_value, dict) else None
    accounts = accounts_value.get("accounts") if isinstance(accounts_value, dict) else None
    strategies = strategies if isinstance(strategies, dict) else {}
    accounts = accounts if isinstance(accounts, dict) else {}
    for text, value in params.items():
        path = parse_path(text, strategies, accounts)
        if path.kind != "step":
            account = accounts[path.owner]
            section = account.get(path.section) if isinstance(account, dict) else None
            if not isinstance(section, dict):
                section = account[path.section] = {}
            section[path.key] = value
            continue
        steps = _steps_of(strategies[path.owner])
        index = [i for i, item in enumerate(steps) if _step_kind(item) == path.section][path.nth - 1]
        item = steps[index]
        current = item.get(path.section) if isinstance(item, dict) else None
        steps[index] = {path.section: {**(current if isinstance(current, dict) else {}), path.key: value}}


def shipped_value(text: str, strategies_value: Any, accounts_value: Any) -> Value:
    """The value the config files hold at a path (the step's default when not written)."""
    strategies = strategies_value.get("strategies", {}) if isinstance(strategies_value, dict) else {}
    accounts = accounts_value.get("accounts", {}) if isinstance(accounts_value, dict) else {}
    path = parse_path(text, strategies, accounts)
    if path.kind != "step":
        section = (accounts[path.owner] or {}).get(path.section) or {}
        default = getattr(ACCOUNT_SECTIONS[path.section](), path.key)
        found: Value = section.get(path.key, default)
        return found
    steps = _steps_of(strategies[path.owner])
    item = [s for s in steps if _step_kind(s) == path.section][path.nth - 1]
    params = item.get(path.section) if isinstance(item, dict) else None
    if isinstance(params, dict) and path.key in params:
        written: Value = params[path.key]
        return written
    field = next(f for f in msgspec.structs.fields(STEP_TYPES[path.section]) if f.encode_name == path.key)
    return field.default if field.default is not msgspec.NODEFAULT else None


def owners(paths: list[str]) -> set[str]:
    """The models named by step paths (the first part of each MODEL.STEP.PARAM)."""
    return {p.split(".")[0] for p in paths if p.split(".")[1:2] and p.split(".")[1] not in ACCOUNT_SECTIONS}
