#!/usr/bin/env python3
"""What readiness notification and health checks cost (SPEC §9): trinit as PID 1 with N processes.

Three configs, each run by trinit as PID 1 of a fresh PID namespace and watched from outside through /proc:

- **notify, idle**: N processes with ``ready = { notify = true }``; half send ``READY=1`` and then sleep, half
  never send it (a timeout of an hour). Context switches of every thread of trinit over ``--idle`` seconds,
  once the first half is ready: waiting for a datagram is a blocked ``recvmsg``, not a poll.
- **10 s health interval**: M processes with ``health = { file = ..., interval = "10s" }``. Context switches
  over ``--window`` seconds (30 by default) against the probes due in it: trinit wakes for the probes only.
- **100 probed every second**: K processes with ``health = { http = ..., interval = "1s" }`` against an HTTP
  server in this benchmark's process (its CPU is not trinit's). trinit's CPU time (user + system, all
  threads) over ``--cpu-window`` seconds, as a share of one core; the server counts the probes.

Needs root (``unshare --pid``).

    sudo python3 bench/health.py --markdown
"""

from __future__ import annotations

import argparse
import http.server
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from _ns import (
    BenchError,
    Namespace,
    context_switches,
    cpu_seconds,
    describe_machine,
    exit_on_sigterm,
    fmt,
    idle_cost,
    machine,
    poll_until,
    render_table,
    render_verdicts,
    require_root,
    resolve_command,
)

# The notifying program: READY=1 on its NOTIFY_SOCKET (an abstract address), then sleep.
NOTIFIER = """\
import os, socket, time
address = os.environ["NOTIFY_SOCKET"]
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", "\\0" + address[1:])
time.sleep(3600)
"""


def toml(processes: dict[str, dict[str, str]]) -> str:
    out = ["[trinit]", "control_socket = false", ""]
    for name, keys in processes.items():
        out.append(f"[process.{name}]")
        out += [f"{k} = {v}" for k, v in keys.items()]
        out.append("")
    return "\n".join(out)


def log_count(ns: Namespace, text: str) -> int:
    assert ns._log is not None
    return ns._log.read_text(errors="replace").count(text)


def switches(pid: int) -> int:
    return sum(context_switches(pid).values())


def measure_notify_idle(trinit: list[str], n: int, seconds: float, workdir: Path) -> int:
    script = workdir / "notifier.py"
    script.write_text(NOTIFIER)
    processes = {}
    for i in range(n):
        command = f'["{sys.executable}", "{script}"]' if i % 2 == 0 else '["sleep", "3600"]'
        processes[f"p{i}"] = {"command": command, "ready": '{ notify = true, timeout = "1h" }'}
    path = workdir / "notify.toml"
    path.write_text(toml(processes))
    with Namespace([*trinit, "-c", str(path)], workdir) as ns:
        half = (n + 1) // 2
        poll_until(lambda: log_count(ns, " is ready") >= half or None, 60, f"{half} ready lines", 0.01)
        time.sleep(1.0)  # the log writer drains, the start settles
        return idle_cost(ns.init_pid, seconds).context_switches


def measure_interval(trinit: list[str], m: int, window: float, workdir: Path) -> tuple[int, int]:
    """(context switches over ``window``, probes due in it)."""
    flag = workdir / "healthy"
    flag.touch()
    processes = {
        f"s{i}": {"command": '["sleep", "3600"]', "health": f'{{ file = "{flag}", interval = "10s" }}'}
        for i in range(m)
    }
    path = workdir / "interval.toml"
    path.write_text(toml(processes))
    with Namespace([*trinit, "-c", str(path)], workdir) as ns:
        poll_until(lambda: log_count(ns, " started: ") >= m or None, 60, f"{m} started lines", 0.01)
        started = time.monotonic()
        time.sleep(1.0)
        before = switches(ns.init_pid)
        begin = time.monotonic()
        time.sleep(window)
        end = time.monotonic()
        took = switches(ns.init_pid) - before
        # Each process is probed every 10 s from the moment it was ready (within the start, ~0.1 s).
        due = sum(1 for k in range(1, 1000) if begin <= started + 10 * k < end) * m
        return took, due


class Counter(http.server.BaseHTTPRequestHandler):
    hits = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with Counter.lock:
            Counter.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024  # all K probes may come at once: no SYN dropped, no attempt timed out
    daemon_threads = True


def measure_cpu(trinit: list[str], k: int, window: float, workdir: Path) -> tuple[float, int]:
    """(trinit's CPU over ``window`` as % of one core, probes answered in it)."""
    server = Server(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    processes = {
        f"w{i}": {"command": '["sleep", "3600"]', "health": f'{{ http = "{url}", interval = "1s" }}'}
        for i in range(k)
    }
    path = workdir / "cpu.toml"
    path.write_text(toml(processes))
    try:
        with Namespace([*trinit, "-c", str(path)], workdir) as ns:
            poll_until(lambda: Counter.hits >= k or None, 60, f"{k} first probes", 0.01)
            time.sleep(2.0)
            cpu_before, hits_before, begin = cpu_seconds(ns.init_pid), Counter.hits, time.monotonic()
            time.sleep(window)
            cpu_after, hits_after, end = cpu_seconds(ns.init_pid), Counter.hits, time.monotonic()
            if cpu_before is None or cpu_after is None:
                raise BenchError("trinit exited during the CPU window")
            if log_count(ns, "unhealthy"):
                raise BenchError(f"probes failed (the server was too slow): {ns.log_tail()}")
            return 100 * (cpu_after - cpu_before) / (end - begin), hits_after - hits_before
    finally:
        server.shutdown()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=50, help="notify processes (default 50)")
    ap.add_argument("-m", type=int, default=10, help="processes probed every 10 s (default 10)")
    ap.add_argument("-k", type=int, default=100, help="processes probed every second (default 100)")
    ap.add_argument("--idle", type=float, default=5.0, help="notify idle window, s (default 5)")
    ap.add_argument("--window", type=float, default=30.0, help="10 s interval window, s (default 30)")
    ap.add_argument("--cpu-window", type=float, default=20.0, help="CPU window, s (default 20)")
    ap.add_argument("--trinit", metavar="CMD", help="trinit's command; -c CONFIG follows (default: trinit)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_root()
    exit_on_sigterm()
    trinit = resolve_command(args.trinit, "trinit")
    if trinit is None:
        sys.exit("trinit not found: install it, or pass --trinit CMD")
    info = machine()
    idle = interval = cpu = None
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trinit-health-") as tmp:
        for step in ("idle", "interval", "cpu"):
            try:
                if step == "idle":
                    idle = measure_notify_idle(trinit, args.n, args.idle, Path(tmp))
                elif step == "interval":
                    interval = measure_interval(trinit, args.m, args.window, Path(tmp))
                else:
                    cpu = measure_cpu(trinit, args.k, args.cpu_window, Path(tmp))
            except BenchError as exc:
                errors.append(f"{step}: {exc}")
    header = ["config", "processes", "window", "probes", "context switches", "CPU"]
    rows = [
        [f"notify, {args.n // 2} ready + {args.n - args.n // 2} waiting", str(args.n), f"{args.idle:g} s", "0",
         fmt(idle), "-"],
        ["health every 10 s (file)", str(args.m), f"{args.window:g} s", fmt(interval and interval[1]),
         fmt(interval and interval[0]), "-"],
        ["health every 1 s (http)", str(args.k), f"{args.cpu_window:g} s", fmt(cpu and cpu[1]), "-",
         f"{fmt(cpu and cpu[0], 2)} % of a core"],
    ]  # fmt: skip
    print(("Machine: " if args.markdown else "machine: ") + describe_machine(info))
    print()
    print(render_table(header, rows, args.markdown))
    print()
    print("trinit's targets:")
    verdicts = [
        ("zero wakeups while waiting for (or after) READY=1", fmt(idle), None if idle is None else idle == 0),
        (
            "with a 10 s interval, wakeups only for the probes (at most one each)",
            f"{fmt(interval and interval[0])} for {fmt(interval and interval[1])} probes",
            None if interval is None else interval[0] <= interval[1],
        ),
        (
            f"{args.k} processes probed every second: under 5 % of one core",
            f"{fmt(cpu and cpu[0], 2)} %",
            None if cpu is None else cpu[0] < 5.0,
        ),
    ]
    print("\n".join(render_verdicts(verdicts, args.markdown)))
    for error in errors:
        print(f"error: {error}")
    missed = any(met is False for _, _, met in verdicts)
    return 1 if errors or missed else 0


if __name__ == "__main__":
    sys.exit(main())
