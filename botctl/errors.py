"""One exception tree for botctl, and the stable exit codes the CLI maps it to.

Exit codes are a contract (documented in README): 0 ok, 1 runtime error, 2 usage error,
3 bot not running (where a command needs it), 4 config error, 5 the journal is in use by
another trading process.
"""

from __future__ import annotations

from botctl.text import printable

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_CONFIG = 4
EXIT_BUSY = 5


class BotctlError(Exception):
    """Base of every error botctl raises on purpose. Its message is one line for the user."""

    exit_code = EXIT_RUNTIME


class UsageError(BotctlError):
    exit_code = EXIT_USAGE


class NotRunningError(BotctlError):
    exit_code = EXIT_NOT_RUNNING


class ConfigProblem:
    """One problem found in a config file, located by file, line, column and key path."""

    __slots__ = ("file", "line", "col", "path", "message")

    def __init__(self, file: str, line: int, col: int, path: str, message: str) -> None:
        self.file, self.line, self.col, self.path, self.message = file, line, col, path, message

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        # Keys and names come from the file: a newline or a terminal escape in them must not
        # split the one-line report or reach the operator's terminal raw.
        return printable(text)

    def __repr__(self) -> str:
        return f"ConfigProblem({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigProblem) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class ConfigError(BotctlError):
    """Config files are invalid. Carries every problem found, not just the first."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.col, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class DataError(BotctlError):
    """Market data is missing, unreadable or unusable."""


class BadMarketData(DataError):
    """Bars were read but must not be traded on (missing symbol, NaN or zero prices, a move
    outside the price collar): the cycle is refused with a WARN and tried again later."""

    def __init__(self, message: str, *, symbols: list[str] | None = None) -> None:
        super().__init__(message)
        self.symbols = symbols or []


class StoreError(BotctlError):
    """The SQLite journal cannot be opened or written safely."""


class JournalBusy(StoreError):
    """Another process already trades on this journal (it holds the journal's writer lock)."""

    exit_code = EXIT_BUSY


class OrderDenied(BotctlError):
    """An order was refused before reaching a broker (risk guard, halt)."""


class BrokerError(BotctlError):
    """A broker call failed. Subclasses say whether retrying can help."""


class BrokerTransient(BrokerError):
    """Timeouts, 429, 5xx: safe to retry after resolving ambiguity."""


class BrokerRejected(BrokerError):
    """The broker refused the request (buying power, qty, 422): recorded, never retried."""


class BrokerAuth(BrokerError):
    """Credentials were refused: the account stops."""


def failure_text(exc: BaseException) -> str:
    """One line on why a run ended with `exc`, for its journal row and event."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, BotctlError):
        return text or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {text}".rstrip(": ")
