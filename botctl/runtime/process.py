"""Is the pid a run recorded really that run's process? Pids are reused after a crash, so a
live pid alone proves nothing: the process must be a botctl command started no later than the
run it claims (Linux /proc; elsewhere only liveness can be checked). And the other half of
liveness, written by the running process: its heartbeat, on real time."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_started_at(pid: int) -> datetime | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    boot = _boot_time()
    if boot is None:
        return None
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime, in clock ticks since boot
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), tz=timezone.utc)


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_botctl_process(pid: int | None, run_started_at: datetime) -> bool:
    if not pid or not is_alive(pid):
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no /proc: liveness is all we can tell
    try:
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if "botctl" not in cmdline:
        return False
    started = process_started_at(pid)
    # The process must have existed when the run was recorded (a little slack for clock ticks).
    return started is None or (started - run_started_at).total_seconds() <= 2.0


# The signals that stop a run cleanly between steps (SIGHUP: the terminal went away, or a
# supervisor asks; botctl has no configuration to reload).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class WallHeartbeat:
    """Heartbeats on real time, whatever clock the run follows: a paced replay or a slow
    cycle still shows as alive to `status`, the health check and `kill` (stale after 5 min)."""

    # BOTCTL_HEARTBEAT_SECONDS shortens it for drills and tests, as BOTCTL_CLOCK speeds the clock.
    SECONDS = 15.0

    def __init__(self, beat, seconds: float | None = None) -> None:
        self._beat = beat  # called with the current UTC time
        self.seconds = seconds if seconds is not None else _heartbeat_seconds()
        self._last = time.monotonic()

    def __call__(self, *_ignored) -> None:
        """Beat if the last beat is `seconds` old or more (cheap to call often)."""
        if time.monotonic() - self._last >= self.seconds:
            self.now()

    def now(self) -> None:
        self._beat(datetime.now(timezone.utc))
        self._last = time.monotonic()


def _heartbeat_seconds() -> float:
    try:
        seconds = float(os.environ.get("BOTCTL_HEARTBEAT_SECONDS", WallHeartbeat.SECONDS))
    except ValueError:
        return WallHeartbeat.SECONDS
    return min(max(seconds, 0.1), WallHeartbeat.SECONDS) if seconds == seconds else WallHeartbeat.SECONDS
