#!/usr/bin/env python3
"""Control-plane latency: ``trinit ctl status`` and ``trinit probe live`` against a trinit running N processes,
next to ``supervisorctl status`` against supervisord running the same N, in the same run.

Each supervisor runs as PID 1 of a fresh PID namespace with N ``sleep infinity`` processes (trinit with
``control_socket`` in a temporary folder, supervisord with its unix_http_server there). Once all N run and
each answers, every client command is run ``--runs`` times, interleaved, each a fresh process as a person
or a HEALTHCHECK runs it; the figure is its wall time, from fork to exit, median and p90. ``python -c pass``
with trinit's interpreter is the floor any Python client pays. Needs root (run bench/setup.sh first).

    sudo python3 bench/ctl.py --markdown
    sudo python3 bench/ctl.py --fake       # trinit's side answered by an in-process fake control socket
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _ns import (
    HERE,
    BenchError,
    Namespace,
    children,
    comm,
    describe_machine,
    exit_on_sigterm,
    fmt,
    machine,
    poll_until,
    render_table,
    require_root,
    resolve_command,
)


@dataclass
class Timing:
    client: str
    server: str
    processes: int
    runs_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def median(self) -> float | None:
        return statistics.median(self.runs_ms) if self.runs_ms else None

    def p90(self) -> float | None:
        if len(self.runs_ms) < 2:
            return self.median()
        return statistics.quantiles(self.runs_ms, n=10, method="inclusive")[8]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def trinit_config(n: int, directory: Path, sock: Path) -> Path:
    path = directory / "trinit-ctl.toml"
    header = f'[trinit]\ncontrol_socket = "{sock}"\n\n'
    path.write_text(
        header + "".join(f'[process.p{i}]\ncommand = ["sleep", "infinity"]\n\n' for i in range(n))
    )
    return path


def supervisord_config(n: int, directory: Path) -> Path:
    path = directory / "supervisord-ctl.conf"
    header = (
        "[supervisord]\nnodaemon=true\nuser=root\nloglevel=warn\n"
        f"logfile={directory}/supervisord.log\nlogfile_maxbytes=0\npidfile={directory}/supervisord.pid\n"
        f"childlogdir={directory}\n\n"
        f"[unix_http_server]\nfile={directory}/supervisor.sock\nchmod=0700\n\n"
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
        f"[supervisorctl]\nserverurl=unix://{directory}/supervisor.sock\n\n"
    )
    program = (
        "[program:p{i}]\ncommand=sleep infinity\nautostart=true\nautorestart=false\nstartsecs=0\n"
        "stdout_logfile=/dev/null\nstdout_logfile_maxbytes=0\nstderr_logfile=/dev/null\nstderr_logfile_maxbytes=0\n\n"
    )
    path.write_text(header + "".join(program.format(i=i) for i in range(n)))
    return path


def wait_all_running(ns: Namespace, n: int, timeout: float) -> None:
    def running() -> bool:
        if not ns.alive():
            raise BenchError(f"the supervisor exited: {ns.log_tail()}")
        return sum(1 for pid in children(ns.init_pid) if comm(pid) == "sleep") >= n

    poll_until(running, timeout, f"{n} sleeps to run", 0.01)


def wait_answers(argv: Sequence[str], timeout: float) -> None:
    """Until ``argv`` exits 0: the server is up and every process is running."""

    def answered() -> bool:
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    poll_until(answered, timeout, f"{argv[-1]!r} to succeed", 0.05)


class FakeControlSocket:
    """trinit's side of the protocol, answered from a thread: ``status`` with N canned processes, probes yes.

    For running this benchmark before the server side exists; it measures the client alone.
    """

    def __init__(self, path: Path, n: int) -> None:
        since = datetime.now(UTC).isoformat()
        processes = [
            {
                "name": f"p{i}",
                "kind": "service",
                "state": "running",
                "pid": 1000 + i,
                "restarts": 0,
                "since": since,
                "last_exit": None,
                "health": None,
                "status_text": None,
                "next_run": None,
            }
            for i in range(n)
        ]
        self._status = json.dumps({"ok": True, "processes": processes}).encode() + b"\n"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as reader:
                request = json.loads(reader.readline() or b"{}")
                cmd = request.get("cmd")
                if cmd == "status":
                    conn.sendall(self._status)
                elif cmd == "probe":
                    conn.sendall(
                        json.dumps({"ok": True, request.get("what"): True, "reason": None}).encode() + b"\n"
                    )
                else:
                    conn.sendall(b'{"ok": false, "error": "not in the fake", "code": "unknown_command"}\n')

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        except OSError:
            pass
        self._sock.close()


def time_clients(clients: dict[str, tuple[list[str], Timing]], runs: int) -> None:
    """Each client ``runs`` times, interleaved, so a slow moment of the machine hits all of them."""
    for _ in range(runs):
        for name, (argv, timing) in clients.items():
            started = time.perf_counter_ns()
            proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            took = (time.perf_counter_ns() - started) / 1e6
            if proc.returncode != 0:
                timing.errors.append(f"{name}: exit {proc.returncode}: {proc.stderr.strip()[:200]}")
            else:
                timing.runs_ms.append(took)


def interpreter_of(command: Sequence[str]) -> str:
    """The Python a console script runs with (its shebang), else this one."""
    try:
        with open(command[0], "rb") as f:
            first = f.readline()
    except OSError:
        return sys.executable
    if first.startswith(b"#!") and b"python" in first:
        return first[2:].decode().split()[0]
    return sys.executable


def measure(args: argparse.Namespace, workdir: Path) -> list[Timing]:
    n, results = args.processes, []
    trinit = resolve_command(args.trinit, "trinit")
    if trinit is None:
        raise SystemExit("trinit not found: use --trinit CMD")
    python = interpreter_of(trinit)
    floor = Timing("python -c pass", "-", 0)
    clients: dict[str, tuple[list[str], Timing]] = {"python -c pass": ([python, "-c", "pass"], floor)}
    results.append(floor)
    sock = workdir / "trinit.sock"
    server = "fake (in-process)" if args.fake else "trinit"
    status = Timing("trinit ctl status", server, n)
    probe = Timing("trinit probe live", server, n)
    ctl = [*trinit, "ctl", "--socket", str(sock), "status"]
    clients["trinit ctl status"] = (ctl, status)
    clients["trinit probe live"] = ([*trinit, "probe", "live", "--socket", str(sock)], probe)
    results += [status, probe]
    supervisorctl = resolve_command(args.supervisorctl, "supervisorctl")
    bundled = HERE / ".venv-supervisor" / "bin"
    if supervisorctl is None and (bundled / "supervisorctl").exists():
        supervisorctl = [str(bundled / "supervisorctl")]
    supervisord = resolve_command(args.supervisord, "supervisord") or (
        [str(bundled / "supervisord")] if (bundled / "supervisord").exists() else None
    )
    with_supervisor = supervisord is not None and supervisorctl is not None and not args.no_supervisord
    if not with_supervisor and not args.no_supervisord:
        log("skipping supervisord: not found (run bench/setup.sh)")
    fake: FakeControlSocket | None = None
    namespaces: list[Namespace] = []
    try:
        if args.fake:
            fake = FakeControlSocket(sock, n)
        else:
            ns = Namespace([*trinit, "-c", str(trinit_config(n, workdir, sock))], workdir).start()
            namespaces.append(ns)
            wait_all_running(ns, n, args.start_timeout)
        wait_answers(ctl, args.start_timeout)
        if with_supervisor:
            assert supervisord is not None and supervisorctl is not None
            conf = supervisord_config(n, workdir)
            ns = Namespace([*supervisord, "-c", str(conf)], workdir).start()
            namespaces.append(ns)
            wait_all_running(ns, n, args.start_timeout)
            supervisor_status = [*supervisorctl, "-c", str(conf), "status"]
            wait_answers(supervisor_status, args.start_timeout)
            timing = Timing("supervisorctl status", "supervisord", n)
            clients["supervisorctl status"] = (supervisor_status, timing)
            results.append(timing)
        log(f"timing {len(clients)} clients, {args.runs} runs each")
        time_clients(clients, args.runs)
    except BenchError as e:
        status.errors.append(str(e))
        log(f"  {e}")
    finally:
        if fake is not None:
            fake.close()
        for ns in namespaces:
            ns.kill()
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--processes", type=int, default=50, help="processes to supervise (default 50)")
    ap.add_argument("--runs", type=int, default=20, help="runs of each client command (default 20)")
    ap.add_argument("--trinit", metavar="CMD", help="trinit's command, server and client (default: trinit)")
    ap.add_argument("--supervisord", metavar="CMD", help="default: on PATH, else bench/.venv-supervisor")
    ap.add_argument("--supervisorctl", metavar="CMD", help="default: on PATH, else bench/.venv-supervisor")
    ap.add_argument("--no-supervisord", action="store_true", help="time trinit's clients only")
    ap.add_argument(
        "--fake", action="store_true", help="answer trinit's clients from an in-process fake socket"
    )
    ap.add_argument("--start-timeout", type=float, default=60.0, help="give up waiting for all to run (s)")
    ap.add_argument("--json", metavar="FILE", help="also write every run as JSON")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_root()
    exit_on_sigterm()
    info = machine()
    with tempfile.TemporaryDirectory(prefix="trinit-ctl-") as tmp:
        results = measure(args, Path(tmp))
    header = ["client", "server", "N", "median ms", "p90 ms", "min ms", "runs"]
    rows = [
        [
            t.client,
            t.server,
            str(t.processes) if t.processes else "-",
            fmt(t.median()),
            fmt(t.p90()),
            fmt(min(t.runs_ms) if t.runs_ms else None),
            f"{len(t.runs_ms)}/{args.runs}",
        ]
        for t in results
    ]
    print(("Machine: " if args.markdown else "machine: ") + describe_machine(info))
    print()
    print(render_table(header, rows, args.markdown))
    errors = [e for t in results for e in t.errors]
    if errors:
        print()
        print("errors:")
        print("\n".join(f"- {e}" for e in sorted(set(errors))))
    if args.json:
        payload = {"machine": info, "settings": vars(args), "results": [asdict(t) for t in results]}
        Path(args.json).write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return 1 if errors or any(not math.isfinite(t.median() or math.nan) for t in results) else 0


if __name__ == "__main__":
    sys.exit(main())
