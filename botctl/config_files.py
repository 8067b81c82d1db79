"""Reading a config file safely: checked before it is read, so a FIFO, a device or a huge file
gives one line instead of a hang or a memory blow-up. Shared by the CLI, the dashboard and
the notifier (none of them may import another's module for it)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from botctl.errors import ConfigError, ConfigProblem


def read_config_file(path: Path) -> bytes:
    """The file's bytes, checked before reading: a regular file (a FIFO would block, a device
    such as /dev/zero never ends) of at most MAX_BYTES; never more than MAX_BYTES + 1 read."""
    from botctl.spec.yamlsource import MAX_BYTES

    def problem(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(path.name, 1, 1, "", message)])

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then says what it is.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise problem(f"no such file in {path.parent.resolve()} (set --config-dir or $BOTCTL_CONFIG_DIR)") from None
    except OSError as exc:
        raise problem(f"cannot read: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise problem(f"is {file_kind(info.st_mode)}, not a file")
        raise problem(f"file is too large ({info.st_size} bytes; the limit is {MAX_BYTES})")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(MAX_BYTES + 1)  # the file may grow after fstat
        except OSError as exc:
            raise problem(f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise problem(f"file is too large (over {MAX_BYTES} bytes, the limit)")
    return data


def file_kind(mode: int) -> str:
    """'a directory', 'a FIFO', ... for an error message."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "a special file"


def load_config_dir(config_dir: Path, *, known_symbols: frozenset[str] | None = None):
    """strategies.yaml and accounts.yaml in `config_dir`, read, decoded and validated (against
    `known_symbols`, the data's, when given): the one loader of the CLI and the dashboard. One
    ConfigError names every problem of both files."""
    from botctl.spec.load import load_config

    strategies, accounts = read_config_pair(config_dir)
    return load_config(strategies, accounts, known_symbols=known_symbols)


def read_config_pair(config_dir: Path) -> tuple[bytes, bytes]:
    """The bytes of strategies.yaml and accounts.yaml in `config_dir`; one ConfigError names
    what is wrong with either file (both are read before either is reported)."""
    from botctl.spec.load import ACCOUNTS_FILE, STRATEGIES_FILE

    contents, problems = [], []
    for name in (STRATEGIES_FILE, ACCOUNTS_FILE):
        try:
            contents.append(read_config_file(config_dir / name))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    strategies, accounts = contents
    return strategies, accounts


def feed_source_names(config_dir: Path) -> tuple[list[str], str | None] | None:
    """The live sources (webhook, http_poll, file) feeds.yaml declares, by name, and a one-line
    problem when it cannot be read; None without a feeds.yaml. What `status` and the dashboard
    list beside the journal's sources; secrets are not checked (nothing here uses them)."""
    from botctl.errors import BotctlError
    from botctl.spec.feeds import FEEDS_FILE, load_feeds

    path = config_dir / FEEDS_FILE
    if not os.path.lexists(path):
        return None
    try:
        config = load_feeds(read_config_file(path), environ=None)
    except BotctlError as exc:
        return [], (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return [name for name, spec in config.sources.items() if spec.type != "journal"], None
