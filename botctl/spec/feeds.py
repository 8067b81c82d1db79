"""feeds.yaml: the external signal sources a bot reads (botctl.feeds) and the kinds of signal.

Optional, beside accounts.yaml. Each source is one of four types: `file` (CSV, JSONL or
parquet, a file or a folder), `http_poll` (a JSON API polled on an interval), `webhook` (an
authenticated HTTP receiver) and `journal` (what an earlier run recorded). Kinds name what a
signal measures (options flow, dark pool, insider trades...) with the weight they carry in a
combined score and the latency a backtest assumes before a signal could have been seen.

Secrets never sit in the file: a source names the environment variable that holds its API key
or webhook secret. Pure: the caller passes the environment (or None where secrets are not
needed, e.g. a backtest, which only reads files and journals).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Mapping
from typing import Any, Literal

import msgspec

from botctl.errors import ConfigError, ConfigProblem
from botctl.spec.decode import Decoder
from botctl.spec.yamlsource import Path, YamlSource

FEEDS_FILE = "feeds.yaml"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SOURCE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SIGNAL_FIELDS = ("id", "ts_event", "symbol", "kind", "score", "direction", "expires_at")
REQUIRED_FIELDS = ("id", "ts_event", "symbol", "kind", "score")
WEBHOOK_SECRET_PREFIX = "whsec_"
MIN_PASSPHRASE = 12


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """msgspec passes these options on to subclasses; they repeat `frozen=True` so that type
    checkers, which do not inherit it, see them as frozen too."""


class KindSpec(_Spec, frozen=True, kw_only=True):
    weight: float = 1.0  # its share of a combined score (botctl.feeds.pointintime.combine)
    latency_seconds: float = 0.0  # backtests: a signal is usable this long after its ts_event
    ttl_minutes: float | None = None  # a signal without expires_at expires this long after ts_event


class FileSource(_Spec, frozen=True, kw_only=True):
    type: Literal["file"]
    path: str  # relative to the config folder (or bundled:NAME); a folder: every .csv/.jsonl/.parquet in it
    watch_seconds: float = 5.0  # paper/live: how often new rows are looked for
    kind: str | None = None  # the kind of rows that do not say


class AuthSpec(_Spec, frozen=True, kw_only=True):
    header: str = "Authorization"
    env: str  # the variable holding the header's value
    prefix: str = ""  # e.g. "Bearer "


class HttpPollSource(_Spec, frozen=True, kw_only=True):
    type: Literal["http_poll"]
    url: str
    interval_seconds: float = 60.0
    auth: AuthSpec | None = None
    items: str = ""  # dotted path to the list of signals in the answer ("" = the answer itself)
    fields: dict[str, str] = {}  # signal field -> the answer's (dotted) key; unnamed ones as is
    kind: str | None = None  # the kind of items that do not say
    timeout_seconds: float = 10.0
    retries: int = 3  # further tries after a 429, a 5xx or no answer
    backoff_seconds: float = 1.0  # doubled each try (a Retry-After header wins)
    max_backoff_seconds: float = 60.0
    stale_after_minutes: float = 15.0  # no good answer for this long: no new entries from it


class WebhookSource(_Spec, frozen=True, kw_only=True):
    type: Literal["webhook"]
    host: str = "127.0.0.1"
    port: int  # 0: any free port (`botctl feeds serve` says which)
    path: str = "/signals"
    secret_env: str
    mode: Literal["standard_webhooks", "passphrase"] = "standard_webhooks"
    tolerance_seconds: float = 300.0  # Standard Webhooks: a webhook-timestamp further off is refused
    max_body_bytes: int = 65536
    kind: str | None = None  # the kind of bodies that do not say
    queue_size: int = 10000  # its signals waiting for the journal; beyond it the answer is 429


class JournalSource(_Spec, frozen=True, kw_only=True):
    type: Literal["journal"]
    path: str | None = None  # another journal (relative to the config folder); default: --db
    sources: list[str] = []  # only signals these sources recorded (default: all)


SourceSpec = FileSource | HttpPollSource | WebhookSource | JournalSource
SOURCE_TYPES: dict[str, type[SourceSpec]] = {
    "file": FileSource, "http_poll": HttpPollSource, "webhook": WebhookSource, "journal": JournalSource,
}


class FeedsConfig(msgspec.Struct, frozen=True):
    kinds: dict[str, KindSpec]
    sources: dict[str, SourceSpec]
    symbols: tuple[str, ...] | None  # None: the plan's symbols decide
    max_future_seconds: float  # a ts_event further ahead of its receipt is refused
    file: str = FEEDS_FILE

    def of_type(self, *types: str) -> dict[str, SourceSpec]:
        return {name: s for name, s in self.sources.items() if s.type in types}


def decode_webhook_secret(value: str) -> bytes | None:
    """The key bytes of a Standard Webhooks secret `whsec_<base64>` (None when malformed)."""
    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        return None
    try:
        key = base64.b64decode(value[len(WEBHOOK_SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) >= 16 else None


def load_feeds(data: bytes | str, *, environ: Mapping[str, str] | None,
               known_symbols: Collection[str] | None = None, name: str = FEEDS_FILE) -> FeedsConfig:
    """Parse and check feeds.yaml; raises ConfigError naming FILE:LINE:COL of every problem.
    With `environ`, the variables that sources name must be set (and well formed); a secret's
    value is never part of a message."""
    source = YamlSource(name, data)
    decoder = Decoder(source)
    problems: list[ConfigProblem] = [*source.problems]
    value = source.value if source.value is not None else {}
    if not source.parsed:
        raise ConfigError(problems or [source.problem((), "not a valid feeds file")])

    def fail(path: Path, message: str) -> None:
        problems.append(source.problem(path, message))

    if not isinstance(value, dict):
        raise ConfigError([source.problem((), "expected a mapping with `sources:` and `kinds:`")])
    for key in value:
        if key not in ("kinds", "sources", "symbols", "max_future_seconds"):
            fail((key,), "unknown key (expected one of: kinds, max_future_seconds, sources, symbols)")
    kinds: dict[str, KindSpec] = {}
    raw_kinds = value.get("kinds") or {}
    if decoder.check(raw_kinds, dict[str, KindSpec], ("kinds",)):
        for kind, raw in raw_kinds.items():
            where: Path = ("kinds", kind)
            spec = msgspec.convert(raw or {}, KindSpec)
            if not KIND_NAME.match(str(kind)):
                fail(where, "a kind is 1-64 characters: a-z first, then a-z 0-9 _")
            if spec.weight < 0:
                fail((*where, "weight"), "must be 0 or more")
            if spec.latency_seconds < 0:
                fail((*where, "latency_seconds"), "must be 0 or more")
            if spec.ttl_minutes is not None and spec.ttl_minutes <= 0:
                fail((*where, "ttl_minutes"), "must be more than 0")
            kinds[str(kind)] = spec

    symbols: tuple[str, ...] | None = None
    if "symbols" in value and decoder.check(value["symbols"], list[str], ("symbols",)):
        symbols = tuple(value["symbols"])
        for i, symbol in enumerate(symbols):
            if known_symbols is not None and symbol not in known_symbols:
                fail(("symbols", i), f"unknown symbol '{symbol}' (not in the available market data)")
    max_future = 300.0
    if "max_future_seconds" in value and decoder.check(value["max_future_seconds"], float, ("max_future_seconds",)):
        max_future = float(value["max_future_seconds"])
        if max_future < 0:
            fail(("max_future_seconds",), "must be 0 or more")

    sources: dict[str, SourceSpec] = {}
    raw_sources = value.get("sources") or {}
    if decoder.check(raw_sources, dict[str, dict[str, Any]], ("sources",)):
        ports: dict[tuple[str, int], str] = {}
        for src_name, raw in raw_sources.items():
            where = ("sources", src_name)
            if not SOURCE_NAME.match(str(src_name)):
                fail(where, "a source name is 1-64 characters from A-Z a-z 0-9 . _ -")
            kind_of = raw.get("type")
            cls = SOURCE_TYPES.get(kind_of) if isinstance(kind_of, str) else None
            if cls is None:
                fail((*where, "type") if "type" in raw else where,
                     f"`type` must be one of: {', '.join(SOURCE_TYPES)}")
                continue
            spec = decoder.build(raw, cls, where)
            if spec is None:
                continue
            _check_source(spec, where, kinds, environ, fail)
            if isinstance(spec, WebhookSource) and spec.port:
                other = ports.setdefault((spec.host, spec.port), str(src_name))
                if other != src_name:
                    fail((*where, "port"), f"source '{other}' already listens on {spec.host}:{spec.port}")
            sources[str(src_name)] = spec
    problems += decoder.problems
    if problems:
        raise ConfigError(problems)
    return FeedsConfig(kinds, sources, symbols, max_future, name)


def _check_source(spec: SourceSpec, where: Path, kinds: Mapping[str, KindSpec],
                  environ: Mapping[str, str] | None, fail: Any) -> None:
    kind = getattr(spec, "kind", None)
    if kind is not None and kind not in kinds:
        fail((*where, "kind"), f"unknown kind '{kind}' (kinds: {', '.join(kinds) or 'none defined'})")

    def env(key: Path, name: str, what: str) -> str | None:
        if not ENV_NAME.match(name):
            fail((*where, *key), f"'{name}' is not an environment variable name")
            return None
        if environ is None:
            return None
        found = environ.get(name)
        if not found:
            fail((*where, *key), f"environment variable {name} is not set (it holds the {what})")
        return found or None

    if isinstance(spec, FileSource):
        if spec.watch_seconds <= 0:
            fail((*where, "watch_seconds"), "must be more than 0")
    elif isinstance(spec, HttpPollSource):
        if not spec.url.startswith(("http://", "https://")):
            fail((*where, "url"), "expected an http:// or https:// URL")
        elif "@" in spec.url.split("/")[2] or "key=" in spec.url.lower() or "token=" in spec.url.lower():
            fail((*where, "url"), "a credential in the URL would be logged: put it in `auth` (from the environment)")
        for key, low in (("interval_seconds", 1.0), ("timeout_seconds", 0.1), ("stale_after_minutes", 0.1)):
            if getattr(spec, key) < low:
                fail((*where, key), f"must be at least {low:g}")
        if spec.retries < 0 or spec.backoff_seconds < 0 or spec.max_backoff_seconds < spec.backoff_seconds:
            fail((*where, "retries"), "needs retries >= 0 and 0 <= backoff_seconds <= max_backoff_seconds")
        for field in spec.fields:
            if field not in SIGNAL_FIELDS:
                fail((*where, "fields", field), f"not a signal field (expected one of: {', '.join(SIGNAL_FIELDS)})")
        if spec.auth is not None:
            env(("auth", "env"), spec.auth.env, "API key")
            if not re.match(r"^[A-Za-z0-9-]{1,64}$", spec.auth.header):
                fail((*where, "auth", "header"), "not an HTTP header name")
    elif isinstance(spec, WebhookSource):
        if not 0 <= spec.port <= 65535:
            fail((*where, "port"), "must be 0-65535 (0: any free port, shown when it starts)")
        if not spec.path.startswith("/"):
            fail((*where, "path"), "must start with /")
        if spec.tolerance_seconds <= 0:
            fail((*where, "tolerance_seconds"), "must be more than 0")
        if not 256 <= spec.max_body_bytes <= 1 << 20:
            fail((*where, "max_body_bytes"), "must be 256 to 1048576")
        if spec.queue_size < 1:
            fail((*where, "queue_size"), "must be at least 1")
        secret = env(("secret_env",), spec.secret_env, "webhook secret")
        if secret is not None:
            if spec.mode == "standard_webhooks" and decode_webhook_secret(secret) is None:
                fail((*where, "secret_env"), f"{spec.secret_env} must hold a Standard Webhooks secret: "
                                             "whsec_ then at least 16 bytes in base64")
            if spec.mode == "passphrase" and len(secret) < MIN_PASSPHRASE:
                fail((*where, "secret_env"), f"{spec.secret_env} must hold at least {MIN_PASSPHRASE} characters")
