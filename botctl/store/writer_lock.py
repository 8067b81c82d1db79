"""One trading process per journal: an exclusive OS lock on `<journal>.lock`.

Two processes that trade on one journal corrupt it (each decides from the other's half-written
state). Every command that writes trading state (`run`, `run --once`, `run --replay`, and
`kill` acting with no bot) takes this lock first; a second one is refused at once with who
holds it. The lock is flock(2) on a file beside the journal, so it dies with its process: a
SIGKILLed holder never leaves a stale lock. The file also holds the holder's pid, command and
start time, which is all a refused process reads of it. Readers (status, tail, tui) never
touch the lock, so they never wait for it and can never make a writer's attempt fail.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
import time
from datetime import datetime, timezone

import msgspec

from botctl.errors import JournalBusy, StoreError


class Holder(msgspec.Struct, frozen=True):
    pid: int
    command: str
    since: datetime

    def describe(self) -> str:
        if not self.pid:
            return "another process (its lock file does not say which)"
        return f"pid {self.pid} (`{self.command}`, since {self.since:%Y-%m-%d %H:%M:%S} UTC)"


def lock_path(journal: str | os.PathLike[str]) -> str:
    # The real path: two spellings of one journal (a symlink, ./x.db and x.db) share one lock.
    return os.path.realpath(os.path.expanduser(os.fspath(journal))) + ".lock"


def this_command() -> str:
    return ("botctl " + shlex.join(sys.argv[1:]))[:200]


class WriterLock:
    def __init__(self, journal: str | os.PathLike[str], command: str | None = None) -> None:
        self.journal = os.fspath(journal)
        self.path = lock_path(journal)
        self.command = command or this_command()
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> Holder | None:
        """Take the lock; None when taken, else who holds it (this process never waits)."""
        if self._fd is not None:
            return None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StoreError(f"cannot create the journal's lock file {self.path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            return holder
        except OSError as e:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {e.strerror}") from e
        me = Holder(pid=os.getpid(), command=self.command, since=datetime.now(timezone.utc).replace(microsecond=0))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, msgspec.json.encode(me) + b"\n", 0)
        except OSError:
            pass  # the lock itself is what matters; a refused process then says "pid unknown"
        self._fd = fd
        return None

    def acquire(self) -> None:
        """Take the lock or raise JournalBusy naming the holder."""
        holder = self.try_acquire()
        if holder is not None:
            raise JournalBusy(busy_message(self.journal, holder))

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock; the file stays, holding nothing

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def busy_message(journal: str, holder: Holder) -> str:
    return (f"{journal} is in use by {holder.describe()}: one trading process per journal; "
            "wait for it to end or stop it (botctl kill, or SIGTERM)")


def _read_holder(fd: int) -> Holder:
    # The holder writes its line right after taking the lock: a refusal in that instant may
    # read an empty file, which still refuses, only with less to say.
    for _ in range(20):
        try:
            return msgspec.json.decode(os.pread(fd, 4096, 0).strip(), type=Holder)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            time.sleep(0.005)
    return Holder(pid=0, command="unknown", since=datetime.fromtimestamp(os.fstat(fd).st_mtime, timezone.utc))


class Turnstile:
    """Priority for the emergency stop on `<journal>.priority`. SQLite's write lock is not
    fair: a process writing back to back (a replay at full speed) can keep a kill's halt
    waiting for seconds. Every write transaction first passes this turnstile (a shared flock
    taken and dropped at once); a kill holds it exclusively around its own short halt
    transaction, so other writers stop at the turnstile and the halt gets the next turn. A
    writer never waits here more than TURNSTILE_WAIT_S (a stopped kill must not stop the bot),
    and the lock dies with its holder."""

    def __init__(self, journal: str | os.PathLike[str]) -> None:
        name = os.fspath(journal)
        self.path = None if name in ("", ":memory:") else os.path.realpath(os.path.expanduser(name)) + ".priority"
        self._fd: int | None = None
        self._exclusive = False

    def _file(self) -> int | None:
        if self._fd is None and self.path is not None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                self.path = None  # no priority without the file; writing goes on as before
        return self._fd

    def pass_through(self) -> None:
        fd = self._file() if not self._exclusive else None
        if fd is None:
            return
        deadline = time.monotonic() + TURNSTILE_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.002)
                continue
            except OSError:
                return
            fcntl.flock(fd, fcntl.LOCK_UN)
            return

    def __enter__(self) -> Turnstile:
        fd = self._file()
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._exclusive = True
            except OSError:
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._exclusive:
            self._exclusive = False
            if self._fd is not None:  # held exclusively: the file is open
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


TURNSTILE_WAIT_S = 2.0

__all__ = ["Holder", "Turnstile", "WriterLock", "busy_message", "lock_path"]
