"""The health endpoint of a real bot under load, on loopback. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/health_load.py [--concurrent 500] [--slow 300]

1. Starts `botctl run --replay 2015-01-01: --speed 1 --health-port P` (a real bot, paced so it
   waits between sessions) in a temporary folder and waits for /health to answer.
2. Opens `--concurrent` connections at once (threads released together by a barrier), each
   sending GET /health, and counts the answers (200) and the failures, with latencies.
3. Sends `--slow` hostile clients: a third never send a request, a third send half a request
   line and wait, a third send a request and reset the connection before the answer; then one
   honest request. Prints how long the honest one waited, the server's
   botctl_health_clients_dropped counter, and how many tracebacks the bot printed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 30.0) -> tuple[bool, float, str]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            ok = answer.status == 200 and bool(answer.read())
            return ok, time.perf_counter() - started, "" if ok else f"status {answer.status}"
    except Exception as exc:  # a benchmark counts failures of any kind
        return False, time.perf_counter() - started, type(exc).__name__


def concurrent_burst(url: str, n: int) -> None:
    barrier = threading.Barrier(n)
    results: list[tuple[bool, float, str]] = [None] * n  # type: ignore[list-item]

    def one(i: int) -> None:
        barrier.wait()
        results[i] = get(url)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ok = [r for r in results if r[0]]
    failures: dict[str, int] = {}
    for r in results:
        if not r[0]:
            failures[r[2]] = failures.get(r[2], 0) + 1
    lat = sorted(r[1] for r in ok)
    print(f"{n} concurrent GET /health: {len(ok)} answered 200, {n - len(ok)} failed {failures or ''}; "
          f"{wall:.2f} s wall for the burst")
    if lat:
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"  latency of answered: median {statistics.median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
              f"max {lat[-1] * 1000:.0f} ms")


def hostile(port: int, n: int) -> list[socket.socket]:
    held = []
    for i in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if i % 3 == 1:
            sock.sendall(b"GET /hea")
        elif i % 3 == 2:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.close()
            continue
        held.append(sock)
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrent", type=int, default=500)
    parser.add_argument("--slow", type=int, default=300)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTCTL_", "ALPACA_"))}
        bot = subprocess.Popen([sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db",
                                str(Path(tmp) / "j.db"), "run", "--replay", "2015-01-01:", "--speed", "1",
                                "--health-port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not get(base + "/health", timeout=1)[0]:
                if time.monotonic() > deadline or bot.poll() is not None:
                    raise SystemExit(f"the bot did not serve /health: {bot.communicate()[1][-500:]}")
                time.sleep(0.2)
            print(f"bot pid {bot.pid} serving {base}/health ({os.cpu_count()} CPUs)")
            concurrent_burst(base + "/health", args.concurrent)
            started = time.perf_counter()
            held = hostile(port, args.slow)
            ok, waited, why = get(base + "/health", timeout=60)
            print(f"{args.slow} hostile clients (silent, half a request, reset before the answer): the next honest "
                  f"request {'answered' if ok else 'FAILED ' + why} after {waited:.2f} s "
                  f"({time.perf_counter() - started:.2f} s including opening them)")
            for sock in held:
                sock.close()
            time.sleep(0.5)
            metrics = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
            dropped = re.search(r"^botctl_health_clients_dropped_total (\S+)$", metrics, re.M)
            print(f"  botctl_health_clients_dropped_total {dropped.group(1) if dropped else '?'}")
        finally:
            bot.send_signal(signal.SIGTERM)
            try:
                out, err = bot.communicate(timeout=30)
                ended = f"exit {bot.returncode} after SIGTERM"
            except subprocess.TimeoutExpired:
                bot.kill()
                out, err = bot.communicate()
                ended = "still running 30 s after SIGTERM: killed"
        print(f"bot {ended}; tracebacks on its stderr: {err.count('Traceback')}; stderr lines: {len(err.splitlines())}")


if __name__ == "__main__":
    main()
