"""notify.yaml: where botctl's events are sent (Apprise URLs) and which go where.

The file is optional and lives beside accounts.yaml; without it nothing is sent and nothing
is imported. It is read only by the commands that send (`run`, `notify test`), because its
URLs need secrets from the environment that a backtest or `status` has no use for.

Secrets never sit in the file: an URL names them as `{env:NAME}`, replaced by the variable's
value when sending, and every URL is shown (in errors, the journal, logs) with those parts
masked. Pure: the caller passes the environment and a URL checker (botctl.notify uses Apprise).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Mapping
from typing import Literal

import msgspec

from botctl.errors import ConfigError
from botctl.records import SEVERITIES
from botctl.spec.decode import Decoder
from botctl.spec.yamlsource import Path, YamlSource

NOTIFY_FILE = "notify.yaml"
ENV_REF = re.compile(r"\{env:([^{}]*)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MASK = "****"

# Every event type botctl journals (tests check the code emits no other), and the two kinds of
# message the notifier makes itself: a rebalance's orders in one message, and the daily summary.
EVENT_TYPES: frozenset[str] = frozenset({
    "run.started", "run.finished", "run.failed", "run.stopped",
    "reconcile.failed", "reconcile.foreign_order", "reconcile.order_never_sent", "reconcile.order_updated",
    "reconcile.position_mismatch",
    "order.rejected", "order.unknown", "order.canceled", "gate.blocked", "breaker.tripped", "first_cycle.halted", "live.first_orders",
    "broker.unavailable", "market.closed", "data.cache_damaged", "data.rejected", "data.missing_bar", "data.gap",
    "cycle.failed", "cycle.owed", "mark.failed", "clock.jumped", "health.serving", "health.exposed",
    "kill.requested", "kill.failed", "kill.orders_canceled", "kill.flatten", "halt.cleared", "resume",
    "signal.rejected", "feed.stale", "feed.fresh", "feed.failed",
})
ORDERS_TYPE = "orders.rebalance"
SUMMARY_TYPE = "daily.summary"
MESSAGE_TYPES: frozenset[str] = EVENT_TYPES | {ORDERS_TYPE, SUMMARY_TYPE}
RunKindName = Literal["replay", "paper", "live"]


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """msgspec passes these options on to subclasses; they repeat `frozen=True` so that type
    checkers, which do not inherit it, see them as frozen too."""


class DestinationSpec(_Spec, frozen=True):
    url: str


class RouteSpec(_Spec, frozen=True):
    """Messages matching every given filter go to `to`."""

    to: str | list[str]
    events: list[str] = msgspec.field(default_factory=lambda: ["*"])  # event types; `reconcile.*` style patterns allowed
    severity: str = "INFO"  # this severity and worse
    accounts: list[str] = []  # empty: every account (events of no account always match)


class RetrySpec(_Spec, frozen=True):
    attempts: int = 5  # tries of a message below CRITICAL; CRITICAL is tried until delivered
    first_seconds: float = 2.0
    max_seconds: float = 300.0


class RateLimitSpec(_Spec, frozen=True):
    """At most `messages` per destination in any `per_minutes`; what is over is folded into
    one digest sent when the window allows again. CRITICAL is never held back."""

    messages: int = 20
    per_minutes: float = 60.0


class QuietHoursSpec(_Spec, frozen=True):
    """Between `start` and `end` (local to `timezone`), messages below `except_severity` wait
    and are sent afterwards as one digest."""

    start: str
    end: str
    timezone: str = "America/New_York"
    except_severity: str = "CRITICAL"


class NotifyFile(_Spec, frozen=True):
    destinations: dict[str, DestinationSpec] = {}
    routes: list[RouteSpec] = []
    kinds: list[RunKindName] = msgspec.field(default_factory=lambda: ["paper", "live"])  # add `replay` to hear about replays too
    daily_summary: bool = True
    group_seconds: float = 5.0  # a rebalance's orders seen within this are one message
    queue_size: int = 1000  # per destination; see Outbox for what is dropped when full
    timeout_seconds: float = 10.0
    flush_seconds: float = 5.0  # how long a stopping bot waits for messages still queued
    retry: RetrySpec = RetrySpec()
    rate_limit: RateLimitSpec = RateLimitSpec()
    quiet_hours: QuietHoursSpec | None = None


class Destination(msgspec.Struct, frozen=True):
    name: str
    url: str  # with its secrets: only ever handed to Apprise
    shown: str  # what people see
    secrets: tuple[str, ...] = ()  # the values taken from the environment, masked in any text

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, MASK)
        return text


class Route(msgspec.Struct, frozen=True):
    to: tuple[str, ...]
    events: tuple[str, ...]
    severity: str
    accounts: frozenset[str]

    def matches(self, type_: str, severity: str, account: str | None) -> bool:
        if SEVERITIES.index(severity) < SEVERITIES.index(self.severity):
            return False
        if self.accounts and account is not None and account not in self.accounts:
            return False
        return any(fnmatch.fnmatchcase(type_, pattern) for pattern in self.events)


class NotifyConfig(msgspec.Struct, frozen=True):
    spec: NotifyFile
    destinations: dict[str, Destination]
    routes: tuple[Route, ...]

    def destinations_for(self, type_: str, severity: str, account: str | None) -> list[str]:
        names: list[str] = []
        for route in self.routes:
            if route.matches(type_, severity, account):
                names += [n for n in route.to if n not in names]
        return names


def resolve_url(template: str, environ: Mapping[str, str]) -> tuple[str, str, tuple[str, ...], list[str]]:
    """(url, shown, secrets, missing variable names) for an URL that names `{env:NAME}`s."""
    missing: list[str] = []
    secrets: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = environ.get(name)
        if not found:
            missing.append(name)
            return ""
        secrets.append(found)
        return found

    url = ENV_REF.sub(value, template)
    shown = ENV_REF.sub(lambda m: "{env:" + m.group(1) + "}", template)
    return url, shown, tuple(secrets), missing


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def load_notify(data: bytes | str, *, environ: Mapping[str, str], check_url: Callable[[str], str | None],
                schemes: Collection[str], known_accounts: Collection[str] | None = None,
                name: str = NOTIFY_FILE) -> NotifyConfig:
    """Parse and check notify.yaml; raises ConfigError naming FILE:LINE:COL of every problem.
    `check_url(url)` says what is wrong with a resolved URL (None when it is usable)."""
    source = YamlSource(name, data)
    decoder = Decoder(source)
    value = source.value if source.value is not None else {}
    spec = decoder.build(value, NotifyFile, ()) if not source.problems else None
    problems = [*source.problems, *decoder.problems]
    if spec is None:
        raise ConfigError(problems or [source.problem((), "not a valid notify file")])

    def fail(path: Path, message: str) -> None:
        problems.append(source.problem(path, message))

    destinations: dict[str, Destination] = {}
    for dest_name, dest in spec.destinations.items():
        path = ("destinations", dest_name, "url")
        refs = ENV_REF.findall(dest.url)
        bad = [r for r in refs if not ENV_NAME.match(r)]
        if bad:
            fail(path, f"{{env:{bad[0]}}} does not name an environment variable")
            continue
        scheme = scheme_of(dest.url)
        if not scheme or "{" in scheme:
            fail(path, "expected an Apprise URL like tgram://{env:TELEGRAM_TOKEN}/CHAT_ID")
            continue
        if scheme not in schemes:
            fail(path, f"unknown notification scheme '{scheme}://' (see the Apprise list of services)")
            continue
        url, shown, secrets, missing = resolve_url(dest.url, environ)
        if missing:
            fail(path, f"environment variable {', '.join(missing)} is not set (the URL needs it)")
            continue
        if not refs and ("@" in dest.url or scheme not in ("json", "form", "xml", "jsons", "forms", "xmls")):
            # An URL of a service with no {env:} part holds its token in the file.
            fail(path, "the secret part of the URL must come from the environment: write it as {env:NAME}")
            continue
        problem = check_url(url)
        if problem:
            fail(path, Destination(dest_name, url, shown, secrets).mask(problem))
            continue
        destinations[dest_name] = Destination(dest_name, url, shown, secrets)

    routes: list[Route] = []
    if spec.destinations and not spec.routes:
        fail(("destinations",), "no routes: add `routes:` saying which events go to which destination")
    for i, route in enumerate(spec.routes):
        base = ("routes", i)
        to = (route.to,) if isinstance(route.to, str) else tuple(route.to)
        for j, target in enumerate(to):
            if target not in spec.destinations:
                where = (*base, "to") if isinstance(route.to, str) else (*base, "to", j)
                known = ", ".join(spec.destinations) or "none defined"
                fail(where, f"unknown destination '{target}' (destinations: {known})")
        for j, pattern in enumerate(route.events):
            if not any(fnmatch.fnmatchcase(t, pattern) for t in MESSAGE_TYPES):
                fail((*base, "events", j), f"no event type '{pattern}' (known: {', '.join(sorted(MESSAGE_TYPES))})")
        if route.severity.upper() not in SEVERITIES:
            fail((*base, "severity"), f"unknown severity '{route.severity}' (expected one of {', '.join(SEVERITIES)})")
        if known_accounts is not None:
            for j, account in enumerate(route.accounts):
                if account not in known_accounts:
                    fail((*base, "accounts", j), f"unknown account '{account}' (accounts.yaml has: "
                                                 f"{', '.join(known_accounts)})")
        routes.append(Route(to, tuple(route.events), route.severity.upper(), frozenset(route.accounts)))

    quiet = spec.quiet_hours
    if quiet is not None:
        for key in ("start", "end"):
            if not CLOCK.match(getattr(quiet, key)):
                fail(("quiet_hours", key), f"expected a time like 22:00, got {getattr(quiet, key)!r}")
        if quiet.except_severity.upper() not in SEVERITIES:
            fail(("quiet_hours", "except_severity"), f"unknown severity '{quiet.except_severity}'")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(quiet.timezone)
        except (KeyError, ValueError):
            fail(("quiet_hours", "timezone"), f"unknown time zone '{quiet.timezone}'")
    for key, low in (("queue_size", 1), ("group_seconds", 0), ("timeout_seconds", 0.1), ("flush_seconds", 0)):
        if getattr(spec, key) < low:
            fail((key,), f"must be at least {low}")
    if spec.retry.attempts < 1 or spec.retry.first_seconds < 0 or spec.retry.max_seconds < spec.retry.first_seconds:
        fail(("retry",), "needs attempts >= 1 and 0 <= first_seconds <= max_seconds")
    if spec.rate_limit.messages < 1 or spec.rate_limit.per_minutes <= 0:
        fail(("rate_limit",), "needs messages >= 1 and per_minutes > 0")
    if problems:
        raise ConfigError(problems)
    return NotifyConfig(spec, destinations, tuple(routes))
