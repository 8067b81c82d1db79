"""`botctl service unit`: a systemd unit that runs `botctl run` as a service."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import typer

from botctl.cli.common import globals_of
from botctl.errors import UsageError


def _botctl_path() -> str:
    """The botctl being run now: the single-file binary, or the virtualenv's script."""
    if getattr(sys, "frozen", False):
        # The single file execs an unpacked copy from its cache folder; the unit must name the
        # file itself, which the launcher passes on (packaging/selfextract-stub.sh).
        launcher = os.environ.get("BOTCTL_LAUNCHER", "")
        if launcher and Path(launcher).is_file():
            return str(Path(launcher).resolve())
        return str(Path(sys.executable).resolve())
    argv0 = Path(sys.argv[0])
    if argv0.name == "botctl" and argv0.exists():
        return str(argv0.resolve())
    return shutil.which("botctl") or str(Path(sys.prefix) / "bin" / "botctl")


# Paths under these are hidden from a service by ProtectHome=yes; a unit that needs one gets
# ProtectHome=read-only instead (ReadWritePaths= still opens its own folders for writing).
HOME_ROOTS = ("/home", "/root", "/run/user")


def _quoted(arg: str) -> str:
    """One ExecStart= / ReadWritePaths= word: double-quoted, with systemd's specifier (%) and
    variable ($) characters escaped, so a path with spaces or quotes stays one argument."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$") + '"'


def _literal(path: str) -> str:
    """A path as the whole value of a setting (WorkingDirectory=, EnvironmentFile=): only
    specifiers need escaping."""
    return path.replace("%", "%%")


def _under_home(path: Path) -> bool:
    return any(path == Path(root) or Path(root) in path.parents for root in HOME_ROOTS)


def unit_text(*, botctl: str, config_dir: Path, db: Path, env_file: Path, user: bool, data: Path | None = None,
              cache_dir: Path | None = None, run_as: str = "botctl") -> str:
    paths = [config_dir, db, env_file, Path(botctl), *(p for p in (data, cache_dir) if p)]
    bad = [p for p in paths if any(c in str(p) for c in "\n\r\0")]
    if bad:
        raise UsageError(f"a path with a line break cannot go into a systemd unit: {str(bad[0])!r}")
    cache_dir = cache_dir or config_dir / "data-cache"  # what `run` uses in its working directory
    writable = sorted({str(config_dir), str(db.parent), str(cache_dir)})
    argv = [botctl, "--config-dir", str(config_dir), "--db", str(db)]
    argv += ["--data", str(data)] if data else []
    argv += ["run", "--cache-dir", str(cache_dir)]
    ctl = "systemctl --user" if user else "sudo systemctl"
    home = any(_under_home(p) for p in paths)
    if user:
        # A user manager cannot switch users or drop capabilities it does not hold: the
        # sandboxing that needs no privileges.
        sandbox = """NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
UMask=0077"""
        setup = ""
    else:
        sandbox = f"""User={run_as}
Group={run_as}
UMask=0077
# The single-file build unpacks itself once per version under $XDG_CACHE_HOME; ProtectSystem=
# and ProtectHome= would leave it no writable cache, so systemd makes one for the user (0700).
CacheDirectory=botctl
CacheDirectoryMode=0700
Environment=XDG_CACHE_HOME=%C/botctl
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome={"read-only" if home else "yes"}
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
PrivateUsers=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
# IP to the broker and market data (any address), the health endpoint; nothing else
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
# Not set: MemoryDenyWriteExecute (libffi, behind ctypes, may need writable code pages) and
# IPAddressAllow= (Alpaca's addresses are not fixed)."""
        setup = f"""#   sudo useradd --system --no-create-home --shell /usr/sbin/nologin {run_as}
#   sudo chown -R {run_as}: {' '.join(_quoted(w).replace('%%', '%').replace('$$', '$') for w in writable)}
"""
    return f"""# botctl as a systemd service. Install:
{setup}#   {ctl} edit --force --full botctl.service   (paste this)
#   {"" if user else "sudo "}install -m 600 /dev/null {_quoted(str(env_file)).replace('%%', '%').replace('$$', '$')}   # then put ALPACA_API_KEY=... and ALPACA_SECRET_KEY=... in it
#   {ctl} enable --now botctl.service
[Unit]
Description=botctl trading bot ({_literal(str(config_dir))})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
WorkingDirectory={_literal(str(config_dir))}
# The keys live only here (mode 0600, read by systemd before it drops privileges), never in accounts.yaml.
EnvironmentFile=-{_literal(str(env_file))}
ExecStart={' '.join(_quoted(a) for a in argv)}
# botctl stops between steps on SIGTERM; give a cycle in flight time to finish.
KillSignal=SIGTERM
TimeoutStopSec=120
Restart=on-failure
RestartSec=30
{sandbox}
ReadWritePaths={' '.join(_quoted(w) for w in writable)}

[Install]
WantedBy={"default.target" if user else "multi-user.target"}
"""


def register(app: typer.Typer) -> None:
    service = typer.Typer(help="Run botctl as a service.", no_args_is_help=True)
    app.add_typer(service, name="service")

    @service.command("unit")
    def unit(
        ctx: typer.Context,
        user: bool = typer.Option(False, "--user", help="A user unit (systemctl --user) instead of a system one."),
        env_file: Path = typer.Option(None, "--env-file", help="File with the API keys (mode 0600).",
                                      show_default="CONFIG_DIR/botctl.env"),
        run_as: str = typer.Option("botctl", "--run-as", metavar="USER",
                                   help="The dedicated system user the service runs as (not for --user units)."),
        cache_dir: Path = typer.Option(None, "--cache-dir", envvar="BOTCTL_CACHE_DIR",
                                       help="Where `run` caches bars fetched from Alpaca.",
                                       show_default="CONFIG_DIR/data-cache"),
    ) -> None:
        """Print a systemd unit for `botctl run` (a dedicated user, sandboxed; restart on
        failure, keys from a 0600 environment file, the config folder as working directory,
        SIGTERM with a long timeout, every global option kept)."""
        g = globals_of(ctx)
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", run_as) or run_as == "root":
            raise UsageError(f"--run-as expects a system user name other than root (e.g. botctl), got {run_as!r}")
        config_dir = Path(os.path.abspath(g.config_dir))
        absolute = (lambda p: Path(os.path.abspath(p)) if p is not None else None)
        typer.echo(unit_text(botctl=_botctl_path(), config_dir=config_dir, db=Path(os.path.abspath(g.db)),
                             env_file=absolute(env_file) or config_dir / "botctl.env", user=user,
                             data=absolute(g.data), cache_dir=absolute(cache_dir), run_as=run_as), nl=False)
