"""`botctl service unit`: a systemd unit that runs `botctl run` as a service."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import typer

from botctl.cli.common import globals_of


def _botctl_path() -> str:
    """The botctl being run now: the single-file binary, or the virtualenv's script."""
    if getattr(sys, "frozen", False):
        return str(Path(sys.executable).resolve())
    argv0 = Path(sys.argv[0])
    if argv0.name == "botctl" and argv0.exists():
        return str(argv0.resolve())
    return shutil.which("botctl") or str(Path(sys.prefix) / "bin" / "botctl")


def unit_text(*, botctl: str, config_dir: Path, db: Path, env_file: Path, user: bool) -> str:
    writable = sorted({str(config_dir), str(db.parent)})
    return f"""# botctl as a systemd service. Install:
#   {"systemctl --user" if user else "sudo systemctl"} edit --force --full botctl.service   (paste this)
#   install -m 600 /dev/null {env_file}   # then put ALPACA_API_KEY=... and ALPACA_SECRET_KEY=... in it
#   {"systemctl --user" if user else "sudo systemctl"} enable --now botctl.service
[Unit]
Description=botctl trading bot ({config_dir})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
WorkingDirectory={config_dir}
# The keys live only here (mode 0600), never in accounts.yaml.
EnvironmentFile=-{env_file}
ExecStart={botctl} --config-dir {config_dir} --db {db} run
# botctl stops between steps on SIGTERM; give a cycle in flight time to finish.
KillSignal=SIGTERM
TimeoutStopSec=120
Restart=on-failure
RestartSec=30
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ReadWritePaths={' '.join(writable)}

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
    ) -> None:
        """Print a systemd unit for `botctl run` (restart on failure, keys from a 0600
        environment file, the config folder as working directory, SIGTERM with a long timeout)."""
        g = globals_of(ctx)
        config_dir = Path(os.path.abspath(g.config_dir))
        db = Path(os.path.abspath(g.db))
        typer.echo(unit_text(botctl=_botctl_path(), config_dir=config_dir, db=db,
                             env_file=Path(os.path.abspath(env_file)) if env_file else config_dir / "botctl.env",
                             user=user), nl=False)
