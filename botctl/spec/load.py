"""Turn the two config files into validated spec objects, or one ConfigError listing every
problem in both files."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, get_args, get_origin

import msgspec

from botctl.errors import ConfigError, ConfigProblem
from botctl.spec.decode import Decoder, describe
from botctl.spec.model import AccountsFile, StrategiesFile
from botctl.spec.steps import STEP_TYPES, AnyStep
from botctl.spec.yamlsource import Path, YamlSource

STRATEGIES_FILE = "strategies.yaml"
ACCOUNTS_FILE = "accounts.yaml"

# Keys people paste plaintext credentials under. They are refused, and their values are never
# echoed back (an error message is a place secrets leak from).
PLAINTEXT_SECRET_KEYS = {"api_key", "secret_key", "api_secret", "key_id", "secret", "password", "token", "key"}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOOKS_LIKE_KEY = re.compile(r"^(PK|AK|CK)[A-Z0-9]{10,}$|^[A-Za-z0-9/+]{30,}$")


class Config(msgspec.Struct, frozen=True):
    strategies: StrategiesFile
    accounts: AccountsFile
    steps: dict[str, tuple[AnyStep, ...]]
    strategies_source: YamlSource
    accounts_source: YamlSource
    # Strategy and universe names that exist but failed to decode: references to them are
    # not reported again as "unknown".
    broken: frozenset[str] = frozenset()
    broken_accounts: frozenset[str] = frozenset()


def _refuse_plaintext_keys(decoder: Decoder, value: Any) -> None:
    """Drop plaintext credential keys from each account (reporting them) before decoding."""
    health = value.get("health") if isinstance(value, dict) else None
    ref = health.get("token_env") if isinstance(health, dict) else None
    if isinstance(health, dict) and isinstance(ref, str) and (LOOKS_LIKE_KEY.match(ref) or not ENV_NAME.match(ref)):
        decoder.fail(("health", "token_env"), "must name an environment variable (like BOTCTL_HEALTH_TOKEN), "
                     "not hold the token itself")
        del health["token_env"]
    accounts = value.get("accounts") if isinstance(value, dict) else None
    if not isinstance(accounts, dict):
        return
    for name, account in accounts.items():
        if not isinstance(account, dict):
            continue
        for key in [k for k in account if k in PLAINTEXT_SECRET_KEYS]:
            env = "ALPACA_SECRET_KEY" if "secret" in key else "ALPACA_API_KEY"
            field = "secret_key_env" if "secret" in key else "api_key_env"
            decoder.fail(
                ("accounts", name, key),
                f"plaintext keys are not allowed in config files; export the key as an environment "
                f"variable and write `{field}: {env}` instead",
            )
            del account[key]
        for field in ("api_key_env", "secret_key_env"):
            ref = account.get(field)
            if isinstance(ref, str) and (LOOKS_LIKE_KEY.match(ref) or not ENV_NAME.match(ref)):
                decoder.fail(
                    ("accounts", name, field),
                    f"must name an environment variable (like {'ALPACA_SECRET_KEY' if 'secret' in field else 'ALPACA_API_KEY'}), "
                    "not hold the key itself",
                )
                del account[field]


def _decode_steps(decoder: Decoder, strategies: dict[str, Any]) -> dict[str, tuple[AnyStep, ...]]:
    """Decode every strategy's steps; only strategies whose steps all decoded are returned."""
    out: dict[str, tuple[AnyStep, ...]] = {}
    for name, strategy in strategies.items():
        raw_steps = strategy.get("steps", []) if isinstance(strategy, dict) else []
        if not isinstance(raw_steps, list):
            continue  # the struct check reports it
        steps: list[AnyStep] = []
        complete = True
        for i, item in enumerate(raw_steps):
            path = ("strategies", name, "steps", i)
            if isinstance(item, str) and item in STEP_TYPES:
                item = {item: {}}
            if not isinstance(item, dict) or len(item) != 1:
                complete = False
                decoder.fail(path, f"a step is a one-key mapping like `select_momentum: {{top: 3}}`, got {describe(item)}")
                continue
            ((kind, params),) = item.items()
            if kind not in STEP_TYPES:
                complete = False
                decoder.fail((*path, kind), f"unknown step (expected one of: {', '.join(STEP_TYPES)})")
                continue
            step = decoder.build({} if params is None else params, STEP_TYPES[kind], (*path, kind))
            if step is None:
                complete = False
            else:
                steps.append(step)
        if complete:  # a partial list would misplace positions and mislead the checks
            out[name] = tuple(steps)
    return out


def _build_file(decoder: Decoder, value: Any, file_type: type) -> tuple[Any, frozenset[str]]:
    """Build a file's Struct entry by entry, so one broken strategy or account neither hides
    the problems of the others nor stops their cross-checks. Returns the Struct holding every
    entry that decoded, and the names of those that did not."""
    if not isinstance(value, dict):
        decoder.fail((), f"expected a mapping at the top of the file, got {describe(value)}")
        value = {}
    fields = {f.encode_name: f for f in msgspec.structs.fields(file_type)}
    for key in value:
        if key not in fields:
            decoder.fail((key,), f"unknown key (expected one of: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    broken: set[str] = set()
    for name, field in fields.items():
        if name not in value:
            continue
        if get_origin(field.type) is dict:
            if not isinstance(value[name], dict):
                decoder.fail((name,), f"expected a mapping, got {describe(value[name])}")
                continue
            entry_type = get_args(field.type)[1]
            good = {}
            for key, entry in value[name].items():
                built = decoder.build(entry, entry_type, (name, key))
                if built is None:
                    broken.add(key)
                    built = _salvage(decoder.source, entry, entry_type, (name, key))
                if built is not None:
                    good[key] = built
            kwargs[name] = good
        else:
            built = decoder.build(value[name], field.type, (name,))
            if built is not None:
                kwargs[name] = built
    return file_type(**kwargs), frozenset(broken)


def _salvage(source: YamlSource, entry: Any, entry_type: type, path: Path) -> Any:
    """An entry without its bad keys, so the rules can still check the rest of it (its own
    problems were already reported); None when even that does not decode."""
    if not isinstance(entry, dict) or not (isinstance(entry_type, type) and issubclass(entry_type, msgspec.Struct)):
        return None
    fields = {f.encode_name: f for f in msgspec.structs.fields(entry_type)}
    probe = Decoder(source)
    kept = {k: v for k, v in entry.items() if k in fields and probe.check(v, fields[k].type, (*path, k))}
    return Decoder(source).build(kept, entry_type, path)


def load_config(strategies_data: bytes | str | YamlSource, accounts_data: bytes | str | YamlSource, *,
                known_symbols: frozenset[str] | None = None,
                strategies_name: str = STRATEGIES_FILE, accounts_name: str = ACCOUNTS_FILE,
                edit: Callable[[Any, Any], None] | None = None) -> Config:
    """Parse, decode and validate both files. Raises ConfigError naming every problem.

    `edit(strategies_value, accounts_value)` may change the parsed values in place before they
    are decoded (research sweeps set parameters this way), so every check applies to them.
    Either file may be given already parsed (a YamlSource, then changed in place)."""
    from botctl.spec.validate import validate  # validate imports Config from here

    s_src = strategies_data if isinstance(strategies_data, YamlSource) else YamlSource(strategies_name, strategies_data)
    a_src = accounts_data if isinstance(accounts_data, YamlSource) else YamlSource(accounts_name, accounts_data)
    s_dec, a_dec = Decoder(s_src), Decoder(a_src)
    s_value = s_src.value if s_src.value is not None else {}
    a_value = a_src.value if a_src.value is not None else {}
    if edit is not None and not s_src.problems and not a_src.problems:
        edit(s_value, a_value)
    _refuse_plaintext_keys(a_dec, a_value)
    strategies, broken = _build_file(s_dec, s_value, StrategiesFile)
    accounts, broken_accounts = _build_file(a_dec, a_value, AccountsFile)
    raw_strategies = s_value.get("strategies") if isinstance(s_value, dict) else None
    steps = _decode_steps(s_dec, raw_strategies) if isinstance(raw_strategies, dict) else {}
    config = Config(strategies, accounts, steps, s_src, a_src, broken, broken_accounts)
    problems = [*s_src.problems, *a_src.problems, *s_dec.problems, *a_dec.problems, *validate(config, known_symbols)]
    if problems:
        raise ConfigError(problems)
    return config
