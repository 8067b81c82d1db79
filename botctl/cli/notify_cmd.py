"""`botctl notify test`: send a test message to a configured destination or to an URL."""

from __future__ import annotations

import os

import typer

from botctl.cli.common import globals_of
from botctl.errors import BotctlError, ConfigError, ConfigProblem, UsageError


class NotifyFailed(BotctlError):
    """A test message could not be delivered (exit 1)."""


def _destination_from_url(url: str):
    """An URL typed on the command line may name {env:NAME} parts like notify.yaml does; it
    is shown with those parts, or with what Apprise considers private, masked."""
    from botctl.notify.delivery import apprise_schemes, check_url
    from botctl.spec.notify import Destination, resolve_url, scheme_of

    resolved, shown, secrets, missing = resolve_url(url, os.environ)
    if missing:
        raise UsageError(f"--url: environment variable {', '.join(missing)} is not set")
    scheme = scheme_of(resolved)
    if scheme not in apprise_schemes():
        raise UsageError(f"--url: unknown notification scheme {scheme + '://' if scheme else 'in the URL'}")
    problem = check_url(resolved)
    if problem:
        raise UsageError(f"--url: {problem}")
    if not secrets:
        shown = mask_url(resolved)
    return Destination("--url", resolved, shown, secrets + _private_parts(resolved))


def _private_parts(url: str) -> tuple[str, ...]:
    """The user, password and path segments of an URL: what may be a token."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    found = [p for p in (parts.username, parts.password) if p]
    found += [seg for seg in parts.path.split("/") if len(seg) >= 6]
    host = _host(url)
    if host and "." not in host and host != "localhost":
        found.append(host)  # tgram://TOKEN/...: the "host" is the token
    return tuple(found)


def _host(url: str) -> str:
    """The host as written (urlsplit lowercases it, and a token's case matters for masking)."""
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rsplit("@", 1)[-1].split(":")[0]


def mask_url(url: str) -> str:
    """scheme://host with every part that may be a secret replaced by ****."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = _host(url)
    if host and "." not in host and host != "localhost":
        host = "****"
    port = f":{parts.port}" if parts.port else ""
    user = "****@" if parts.username or parts.password else ""
    path = "/".join("****" if len(seg) >= 6 else seg for seg in parts.path.split("/"))
    return f"{parts.scheme}://{user}{host}{port}{path}"


def register(app: typer.Typer) -> None:
    notify_app = typer.Typer(help="Notifications (notify.yaml): send a test message.", no_args_is_help=True)
    app.add_typer(notify_app, name="notify")

    @notify_app.command("test")
    def test(
        ctx: typer.Context,
        to: str = typer.Option(None, "--to", metavar="NAME", help="A destination of notify.yaml (default: every one)."),
        url: str = typer.Option(None, "--url", metavar="APPRISE_URL",
                                help="Send to this Apprise URL instead ({env:NAME} parts are read from the environment)."),
        timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds to wait for the service."),
    ) -> None:
        """Send a test message; exit 1 with one line if it is not delivered."""
        from botctl.notify.delivery import send
        from botctl.notify.messages import test_message
        from botctl.notify.setup import notify_path, read_notify

        g = globals_of(ctx)
        if url is not None and to is not None:
            raise UsageError("give --to or --url, not both")
        if url is not None:
            destinations = [_destination_from_url(url)]
        else:
            config = read_notify(g.config_dir)
            if config is None:
                raise ConfigError([ConfigProblem(notify_path(g.config_dir).name, 1, 1, "",
                                                 f"no such file in {g.config_dir.resolve()} (see docs/notify.md), "
                                                 "or give --url")])
            if to is not None and to not in config.destinations:
                raise UsageError(f"unknown destination '{to}' (notify.yaml has: {', '.join(config.destinations) or 'none'})")
            destinations = [config.destinations[to]] if to else list(config.destinations.values())
            if not destinations:
                raise UsageError("notify.yaml has no destinations")
        failed = []
        for dest in destinations:
            reason = send(dest.url, test_message(dest.name), timeout)
            if reason is None:
                typer.echo(f"sent to {dest.name} ({dest.shown})")
            else:
                failed.append(f"{dest.name} ({dest.shown}): {dest.mask(reason)}")
        if failed:
            raise NotifyFailed("notify test: not delivered to " + "; ".join(failed))
