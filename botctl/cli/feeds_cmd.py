"""`botctl feeds`: check feeds.yaml, journal a recorded signal file, list what was journaled,
and serve the live sources on their own (what `botctl run` does beside trading)."""

from __future__ import annotations

import json
import signal as signals_module
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import typer

from botctl.cli.common import globals_of, out
from botctl.errors import ConfigError, ConfigProblem, UsageError


def _config(g, *, secrets: bool):
    import os

    from botctl.feeds.runner import feeds_path, read_feeds

    config = read_feeds(g.config_dir, environ=os.environ if secrets else None, known_symbols=_symbols(g))
    if config is None:
        raise ConfigError([ConfigProblem(feeds_path(g.config_dir).name, 1, 1, "",
                                         f"no such file in {g.config_dir.resolve()} (see docs/feeds.md)")])
    return config


def _symbols(g) -> frozenset[str] | None:
    """The symbols of the configured market data, when it can be read (signals for others are refused)."""
    from botctl.errors import BotctlError

    try:
        from botctl.adapters.file_data import available_symbols

        found = available_symbols(g.data)
    except BotctlError:
        return None
    return frozenset(found) if found is not None else None


def _plan_symbols(g) -> frozenset[str] | None:
    from botctl.errors import BotctlError

    try:
        from botctl.cli.common import load_plan

        plan = load_plan(g)
    except BotctlError:
        return None
    return frozenset(s for a in plan.accounts for s in a.symbols)


def _describe(name: str, spec) -> str:
    if spec.type == "file":
        return f"file {spec.path} (watched every {spec.watch_seconds:g} s in paper/live runs)"
    if spec.type == "http_poll":
        auth = f", {spec.auth.header} from ${spec.auth.env}" if spec.auth else ", no auth"
        return (f"http_poll {spec.url} every {spec.interval_seconds:g} s{auth}; stale after "
                f"{spec.stale_after_minutes:g} min without a good answer")
    if spec.type == "webhook":
        return (f"webhook http://{spec.host}:{spec.port}{spec.path} ({spec.mode}, secret from ${spec.secret_env}, "
                f"window {spec.tolerance_seconds:g} s, body <= {spec.max_body_bytes} bytes)")
    return f"journal {spec.path or '(the --db journal)'}" + (f", sources {', '.join(spec.sources)}" if spec.sources else "")


def signal_line(record) -> str:
    """One journaled signal for `feeds list` and `tail --kind signals`."""
    direction = f" {record.direction}" if record.direction else ""
    expires = f" expires {record.expires_at:%Y-%m-%d %H:%M:%S}Z" if record.expires_at else ""
    return (f"{record.ts_event:%Y-%m-%d %H:%M:%S}Z {record.source} {record.kind} {record.symbol} "
            f"score {record.score:g}{direction} (received {record.ts_received:%Y-%m-%d %H:%M:%S}Z){expires} "
            f"id {record.signal_id}")


def _when(value: str | None, option: str) -> datetime | None:
    from botctl.feeds.checks import parse_ts

    if value is None:
        return None
    parsed = parse_ts(value if "T" in value or not value[:4].isdigit() else value + "T00:00:00Z")
    if parsed is None:
        raise UsageError(f"{option} expects a time like 2024-03-01 or 2024-03-01T14:30:00Z, got {value!r}")
    return parsed


def register(app: typer.Typer) -> None:
    feeds_app = typer.Typer(help="External signal feeds (feeds.yaml): check, ingest, list, serve.",
                            no_args_is_help=True)
    app.add_typer(feeds_app, name="feeds")

    @feeds_app.command("check")
    def check(
        ctx: typer.Context,
        as_json: bool = typer.Option(False, "--json", help="One JSON object: kinds and sources."),
    ) -> None:
        """Check feeds.yaml (and that its secrets' environment variables are set) and show each source; problems as FILE:LINE:COL: key: message (exit 4)."""
        config = _config(globals_of(ctx), secrets=True)
        if as_json:
            typer.echo(json.dumps({"kinds": msgspec.to_builtins(config.kinds),
                                   "sources": msgspec.to_builtins(config.sources),
                                   "symbols": list(config.symbols) if config.symbols is not None else None,
                                   "max_future_seconds": config.max_future_seconds}))
            return
        out(f"ok: {len(config.sources)} source(s), {len(config.kinds)} kind(s)")
        for name, spec in config.kinds.items():
            ttl = f", expires {spec.ttl_minutes:g} min after ts_event" if spec.ttl_minutes else ""
            out(f"  kind {name}: weight {spec.weight:g}, backtest latency {spec.latency_seconds:g} s{ttl}")
        for name, spec in config.sources.items():
            out(f"  source {name}: {_describe(name, spec)}")

    @feeds_app.command("ingest")
    def ingest(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help="A .csv, .jsonl or .parquet signal file (or a folder of them)."),
        source: str = typer.Option(..., "--source", help="The source name to record them under."),
        kind: str = typer.Option(None, "--kind", help="The kind of rows that do not say."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object with the counts and the refused rows."),
    ) -> None:
        """Check and journal a recorded signal file into --db, received now; one already journaled for the source is a duplicate, kept as first recorded."""
        from botctl.feeds.runner import read_file_signals
        from botctl.spec.feeds import SOURCE_NAME
        from botctl.store import Store

        g = globals_of(ctx)
        if not SOURCE_NAME.match(source):
            raise UsageError("--source is 1-64 characters from A-Z a-z 0-9 . _ -")
        config = _config(g, secrets=False)
        if kind is not None and config.kinds and kind not in config.kinds:
            raise UsageError(f"--kind {kind!r} is not declared in feeds.yaml ({', '.join(config.kinds)})")
        now = datetime.now(timezone.utc)
        signals, refused = read_file_signals(file, source, config, received=now, known_symbols=_symbols(g),
                                             default_kind=kind)
        with Store.open(g.db) as store:
            answers = store.append_signals(signals)
            if refused:
                from botctl.records import Event

                store.insert_many(Event(ts_event=now, subsystem="feeds", type="signal.rejected", severity="WARN",
                                        symbol=r.symbol, message=f"{source}: signal refused, never traded on: {r.detail} at {where}",
                                        details={"source": source, "reason": r.reason, "where": where})
                                  for where, r in refused[:1000])
        recorded = sum(answers)
        body = {"file": str(file), "source": source, "recorded": recorded, "duplicates": len(answers) - recorded,
                "refused": [{"where": w, "reason": r.reason, "detail": r.detail} for w, r in refused],
                "received_at": now.isoformat()}
        if as_json:
            typer.echo(json.dumps(body))
            return
        out(f"{file}: {recorded} signal(s) journaled as {source}, {len(answers) - recorded} already journaled, "
            f"{len(refused)} refused (received {now:%Y-%m-%d %H:%M:%S}Z)")
        for where, r in refused[:20]:
            out(f"  {where}: {r.reason}: {r.detail}")
        if len(refused) > 20:
            out(f"  ... and {len(refused) - 20} more (--json lists every one)")

    @feeds_app.command("list")
    def list_(
        ctx: typer.Context,
        source: str = typer.Option(None, "--source", help="Only this source."),
        kind: str = typer.Option(None, "--kind", help="Only this kind."),
        symbol: str = typer.Option(None, "--symbol", help="Only this symbol."),
        since: str = typer.Option(None, "--since", help="ts_event at or after (2024-03-01 or an ISO time with zone)."),
        until: str = typer.Option(None, "--until", help="ts_event at or before."),
        n: int = typer.Option(50, "-n", "--lines", min=1, help="The newest N signals."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    ) -> None:
        """The journaled signals (newest N, in ts_event order) and, per source, how many and the latest receipt."""
        from botctl.store import Store

        g = globals_of(ctx)
        start, end = _when(since, "--since"), _when(until, "--until")
        with Store.open(g.db, create=False, readonly=True) as store:
            found = store.signals(source=source, kind=kind, symbol=symbol.upper() if symbol else None,
                                  since=start, until=end, limit=n)
            totals = store.signal_sources(datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0))
        if as_json:
            for record in found:
                typer.echo(json.dumps({"kind": "signals", **msgspec.to_builtins(record)}))
            return
        now = datetime.now(timezone.utc)
        out(f"signals journaled in {g.db} (as of {now:%Y-%m-%d %H:%M:%S}Z):")
        for name, (today, last, total) in sorted(totals.items()):
            out(f"  {name}: {total} in all, {today} received today (UTC), last received "
                f"{f'{last:%Y-%m-%d %H:%M:%S}Z' if last else 'never'}")
        if not found:
            out("no signals match")
        for record in found:
            out(signal_line(record))

    @feeds_app.command("serve")
    def serve(
        ctx: typer.Context,
        as_json: bool = typer.Option(False, "--json", help="Print the sources' addresses as one JSON object."),
    ) -> None:
        """Run feeds.yaml's live sources (webhooks, pollers, file watchers) journaling into --db until Ctrl-C or SIGTERM, without trading (`botctl run` starts them itself)."""
        from botctl.feeds.runner import FeedRunner
        from botctl.store import Store

        g = globals_of(ctx)
        config = _config(g, secrets=True)
        known = frozenset(config.symbols) if config.symbols is not None else (_plan_symbols(g) or _symbols(g))
        with Store.open(g.db) as store:
            pass  # created and migrated here, so the sources' own connections find it current
        runner = FeedRunner(config, g.config_dir, known_symbols=known).start(store)
        stop = threading.Event()
        signals_module.signal(signals_module.SIGTERM, lambda *_: stop.set())
        try:
            now = datetime.now(timezone.utc)
            states = runner.states(now)
            if as_json:
                typer.echo(json.dumps({"sources": [{"name": s.name, "type": s.type, "address": s.address}
                                                   for s in states]}))
            else:
                for s in states:
                    out(f"feeds: {s.name} ({s.type}) started" + (f", listening on {s.address}" if s.address else ""))
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            runner.stop()
