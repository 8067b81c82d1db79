"""Reading feeds.yaml, running its live sources inside a bot process, and loading signals for
backtests and replays.

`FeedRunner` is what `botctl run` (and `botctl feeds serve`) starts: one journal writer
(botctl.feeds.intake), a receiver per webhook source, a poller per http_poll source and a
watcher per file source, each in its own threads with bounded queues. `load_signals` is the
backtest side: file sources read as recorded files (timing "declared": ts_event + latency),
journal sources read back with their recorded receipt times ("recorded").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botctl.config_files import read_config_file
from botctl.feeds.checks import Rejection, check_signal, payload_hash
from botctl.feeds.intake import Intake, utc_now
from botctl.feeds.pointintime import Mode
from botctl.records import Signal
from botctl.spec.feeds import (
    FEEDS_FILE,
    FeedsConfig,
    FileSource,
    HttpPollSource,
    JournalSource,
    WebhookSource,
    load_feeds,
)


def feeds_path(config_dir: Path) -> Path:
    return config_dir / FEEDS_FILE


def read_feeds(config_dir: Path, *, environ: Mapping[str, str] | None = os.environ,
               known_symbols: Collection[str] | None = None) -> FeedsConfig | None:
    """The checked feeds.yaml of `config_dir`, or None when there is none. environ=None skips
    the secrets' checks (a backtest needs none)."""
    path = feeds_path(config_dir)
    if not os.path.lexists(path):
        return None
    return load_feeds(read_config_file(path), environ=environ, known_symbols=known_symbols)


def kind_ttls(config: FeedsConfig) -> dict[str, float | None]:
    return {name: spec.ttl_minutes for name, spec in config.kinds.items()}


BUNDLED = "bundled:"  # `path: bundled:example_signals.csv` names a file shipped in botctl/data


def resolve(config_dir: Path, path: str) -> Path:
    if path.startswith(BUNDLED):
        return Path(__file__).resolve().parents[1] / "data" / Path(path[len(BUNDLED):]).name
    p = Path(path).expanduser()
    return p if p.is_absolute() else config_dir / p


@dataclass(frozen=True)
class SourceState:
    """One source as status shows it."""

    name: str
    type: str
    stale: bool
    last_signal_at: datetime | None
    last_ok_at: datetime | None  # http_poll: the last good answer
    error: str
    address: str = ""  # webhook: where it listens


class FeedRunner:
    """The configured live sources of one bot process."""

    def __init__(self, config: FeedsConfig, config_dir: Path, *, known_symbols: Collection[str] | None = None,
                 run_id: str | None = None, environ: Mapping[str, str] = os.environ) -> None:
        self.config, self.config_dir = config, config_dir
        self.known_symbols = frozenset(config.symbols) if config.symbols is not None else (
            frozenset(known_symbols) if known_symbols is not None else None)
        self.run_id = run_id
        self.environ = environ
        self.intake: Intake | None = None
        self.now: Callable[[], datetime] = utc_now  # the run's clock, once started
        self.webhooks: dict[str, Any] = {}
        self.watched: dict[str, Any] = {}

    def start(self, store: Any, clock: Any = None) -> FeedRunner:
        """Start every live source, journaling into `store`'s file (on connections of its own,
        in its own threads). `clock` is a Clock port or a function answering an aware now."""
        from botctl.feeds.poll import FileWatcher, Poller
        from botctl.feeds.webhook import WebhookReceiver

        now: Callable[[], datetime] = (clock.now if hasattr(clock, "now") else clock) if clock is not None else utc_now
        self.now = now
        path = store.path if hasattr(store, "path") else os.fspath(store)
        # One queue for every source; each webhook also has its own limit (its queue_size).
        queue_size = sum(s.queue_size for s in self.config.sources.values() if isinstance(s, WebhookSource)) + 1000
        self.intake = Intake(path, run_id=self.run_id, queue_size=queue_size, now=now).start()  # opens (migrates) it
        stale_before = _journal_stale(path)
        rules: dict[str, Any] = {"kinds": kind_ttls(self.config), "known_symbols": self.known_symbols,
                                 "max_future": timedelta(seconds=self.config.max_future_seconds)}
        try:
            for name, spec in self.config.sources.items():
                if isinstance(spec, WebhookSource):
                    secret = self.environ.get(spec.secret_env, "")
                    self.webhooks[name] = WebhookReceiver(name, spec, secret, self.intake, now=now, **rules).start()
                elif isinstance(spec, HttpPollSource):
                    value = self.environ.get(spec.auth.env) if spec.auth is not None else None
                    poller = Poller(name, spec, value, self.intake, now, **rules)
                    if name in stale_before:  # stale when the last run ended: until it answers
                        poller.restore_stale(stale_before[name])
                    self.watched[name] = poller.start()
                elif isinstance(spec, FileSource):
                    self.watched[name] = FileWatcher(name, resolve(self.config_dir, spec.path), spec.watch_seconds,
                                                     self.intake, now, default_kind=spec.kind, **rules).start()
        except OSError as exc:
            self.stop()
            from botctl.errors import BotctlError

            raise BotctlError(f"feeds: cannot start the sources of {FEEDS_FILE}: {exc.strerror or exc}") from None
        return self

    def stop(self) -> None:
        for receiver in self.webhooks.values():
            receiver.stop()
        for source in self.watched.values():
            source.stop()
        if self.intake is not None:
            self.intake.stop()

    def stale_sources(self, now: datetime) -> list[SourceState]:
        """The http_poll sources with no good answer for their stale_after_minutes: take no new
        entries from their signals."""
        return [s for s in self.states(now) if s.stale]

    def stale_since(self, now: datetime | None = None) -> dict[str, datetime]:
        """Each stale http_poll source at `now` (the run's clock by default) with the instant it
        went stale: what `feeds.plan_scores.LiveScores` treats as missing. A source found stale
        here for the first time journals its `feed.stale` now, not at its next failed poll."""
        from botctl.feeds.poll import Poller

        at = now if now is not None else self.now()
        out = {}
        for name, source in self.watched.items():
            if isinstance(source, Poller) and (since := source.judge(at)) is not None:
                out[name] = since
        return out

    def attach_run(self, run_id: str) -> None:
        """Events the sources journal from now on belong to `run_id` (the trading run, which
        starts after the feeds)."""
        self.run_id = run_id
        if self.intake is not None:
            self.intake.run_id = run_id

    def states(self, now: datetime) -> list[SourceState]:
        out = []
        from botctl.feeds.poll import Poller

        for name, receiver in self.webhooks.items():
            host, port = receiver.address
            out.append(SourceState(name, "webhook", False, receiver.last_signal_at, None, "", f"{host}:{port}"))
        for name, source in self.watched.items():
            if isinstance(source, Poller):
                out.append(SourceState(name, "http_poll", source.is_stale(now), source.last_signal_at,
                                       source.last_ok, source.last_error))
            else:
                out.append(SourceState(name, "file", False, source.last_signal_at, None, source.last_error))
        return out

    def live_sources(self) -> list[str]:
        """The sources this process runs (webhook, http_poll, file), by name."""
        return [*self.webhooks, *self.watched]

    def stale_now(self) -> list[str]:
        """The sources stale on the run's clock now (for /metrics: judges, journals nothing)."""
        return [s.name for s in self.states(self.now()) if s.stale]

    def counts(self) -> dict[tuple[str, str, str], int]:
        """(source, outcome, reason) -> count, for /metrics: outcome is received, recorded,
        duplicate or rejected (with the reason)."""
        return dict(self.intake.counts) if self.intake is not None else {}


def _journal_stale(path: str) -> dict[str, datetime]:
    """The sources the journal last said were stale (no feed.fresh since), with when it said so."""
    from botctl.store.journal import Store
    from botctl.store.overview import feed_views

    if not os.path.exists(path):
        return {}
    with Store.open(path, readonly=True) as store:
        return {view.source: view.stale_since for view in feed_views(store, utc_now())
                if view.stale and view.stale_since is not None}


def read_file_signals(path: Path, source: str, config: FeedsConfig, *, received: datetime | None = None,
                      known_symbols: Collection[str] | None = None,
                      default_kind: str | None = None) -> tuple[list[Signal], list[tuple[str, Rejection]]]:
    """Every signal of a recorded file, and each refused row with its FILE:LINE. `received`
    None: a backtest's read (receipt unknown); otherwise the time to record as ts_received."""
    from botctl.feeds.files import read_rows

    symbols = frozenset(config.symbols) if config.symbols is not None else known_symbols
    signals: list[Signal] = []
    refused: list[tuple[str, Rejection]] = []
    for row in read_rows(path):
        if row.values is None:
            refused.append((row.where, Rejection("malformed", row.problem)))
            continue
        checked = check_signal(row.values, source=source, received=received, kinds=kind_ttls(config),
                               known_symbols=symbols, max_future=timedelta(seconds=config.max_future_seconds),
                               digest=payload_hash(row.raw), default_kind=default_kind)
        if isinstance(checked, Rejection):
            refused.append((row.where, checked))
        else:
            signals.append(checked)
    return signals, refused


def load_signals(config: FeedsConfig, config_dir: Path, db_path: Path | None, *,
                 known_symbols: Collection[str] | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 ) -> tuple[list[Signal], dict[str, Mode], list[tuple[str, Rejection]]]:
    """What a backtest or replay reads: (signals, timing mode per source, refused rows).

    File sources are read whole ("declared" timing); journal sources from their journal with
    since <= ts_event <= until ("recorded" timing). Live-only sources (webhook, http_poll)
    contribute nothing directly: a journal source brings back what they recorded."""
    from botctl.store.journal import Store

    signals: list[Signal] = []
    modes: dict[str, Mode] = {}
    refused: list[tuple[str, Rejection]] = []
    for name, spec in config.sources.items():
        if isinstance(spec, FileSource):
            found, bad = read_file_signals(resolve(config_dir, spec.path), name, config,
                                           known_symbols=known_symbols, default_kind=spec.kind)
            signals += [s for s in found if (since is None or s.ts_event >= since) and (until is None or s.ts_event <= until)]
            refused += bad
            modes[name] = "declared"
        elif isinstance(spec, JournalSource):
            path = resolve(config_dir, spec.path) if spec.path else db_path
            if path is None or not path.exists():
                from botctl.errors import DataError

                raise DataError(f"{FEEDS_FILE}: source {name}: no journal at {path}")
            with Store.open(path, readonly=True) as store:
                found = store.signals(source=spec.sources or None, since=since, until=until)
            signals += found
            for source in {s.source for s in found}:
                modes[source] = "recorded"
    return signals, modes, refused


@contextmanager
def feeds_for_run(config_dir: Path, store: Any, symbols: Collection[str], *, echo: Callable[[str], None] | None = None,
                  clock: Any = None) -> Iterator[FeedRunner | None]:
    """While inside, feeds.yaml's live sources run beside a paper or live bot, journaling into
    `store`'s file (None, and nothing imported or started, without a feeds.yaml). `clock` is
    the run's (the Trader's, BOTCTL_CLOCK's rehearsal clock included): receipts are stamped and
    staleness judged on it, so they agree with the run's decisions."""
    config = read_feeds(config_dir, known_symbols=None) if feeds_path(config_dir).exists() else None
    if config is None or not (config.of_type("webhook", "http_poll", "file")):
        yield None
        return
    runner = FeedRunner(config, config_dir, known_symbols=symbols).start(store, clock)
    if echo is not None:
        for state in runner.states(runner.now()):
            echo(f"feeds: {state.name} ({state.type})" + (f" listening on {state.address}" if state.address else ""))
    try:
        yield runner
    finally:
        runner.stop()
