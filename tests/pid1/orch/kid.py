"""A scriptable child for the orchestration tests: ``kid.py EVENTS NAME ACTION...``.

Every line it records is appended (one ``write``, O_APPEND) to the file EVENTS as

    EVENT <time.monotonic_ns()> NAME WHAT [DETAIL...]

CLOCK_MONOTONIC is shared across PID namespaces, so the tests compare these timestamps with
each other and with their own ``time.monotonic_ns()``.

It installs the handlers of its ``on=`` actions, records ``start pid=P pgid=G``, then runs the
other ACTIONs in order:

  sleep=S            sleep S seconds
  mark=WHAT          record WHAT
  touch=PATH / rm=PATH
  waitfile=PATH      wait until PATH exists
  listen=PORT        listen on 127.0.0.1:PORT (records ``listening``)
  http=PORT:DELAY    HTTP server on 127.0.0.1:PORT answering 503 for DELAY s, then 200
                     (records ``served200`` before the first 200 is sent)
  out=TEXT / err=TEXT  one line on stdout / stderr
  spam=N             N numbered lines on stdout, one write each
  spamterm           numbered lines on stdout until SIGTERM; then records ``wrote N`` and exits 0
  on=SIG:MODE        what signal SIG does (name without SIG): ``exit`` (record SIG, ``exiting``,
                     exit 0), ``ignore`` (record SIG), ``slow:S`` (record SIG, S s of cleanup,
                     record ``cleaned``, exit 0), ``second`` (record SIG; exit like ``exit`` on
                     the second one), ``waitchild`` (record SIG, wait for the child of
                     ``child=``, record ``exiting``, exit 0), ``code:N`` (record SIG and
                     ``exiting``, exit N), ``exists:PATH`` (record ``SIG exists=True|False``
                     for PATH, then ``exiting``, exit 0)
  child=NAME2        start ``kid.py EVENTS NAME2 on=TERM:exit forever`` in our process group
                     and wait for its start record
  daemon=NAME2[:MODE]  double fork ``kid.py EVENTS NAME2 on=TERM:MODE forever`` (MODE
                     ``slow:0.3`` by default; re-parented to trinit) and wait for its start record
  info=PATH          write JSON (pid, uid, gid, groups, cwd, env, stdin target) to PATH
  env=VAR            record ``env VAR=<value>`` (or ``env VAR unset``)
  exit=N             record ``exit N`` and exit with N
  kill=SIG           send SIG to itself
  failtimes=PATH:N   count the runs in PATH; the first N runs record ``exit 1`` and exit 1
  crashonce=STAMP,F  the first run (STAMP does not exist): create STAMP, wait for STAMP.go,
                     remove F, record ``exit 1`` and exit 1; later runs go on
  forever            sleep until a signal ends it

Without ``exit=`` or ``forever`` it records ``exit 0`` at the end and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

EVENTS = sys.argv[1]
NAME = sys.argv[2]
_fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
_keep: list[object] = []
_state = {"spam_stop": False, "count": 0, "terms": 0}
_children: list[subprocess.Popen[bytes]] = []


def record(what: str, name: str = NAME) -> None:
    os.write(_fd, f"EVENT {time.monotonic_ns()} {name} {what}\n".encode())


def leave(code: int) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def wait_record(name: str, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(EVENTS) as f:
            for line in f:
                parts = line.split(" ", 3)
                if len(parts) == 4 and parts[2] == name and parts[3].startswith(what):
                    return
        time.sleep(0.005)
    record(f"gave-up-waiting-for {name} {what}")
    leave(99)


def me(name: str, *actions: str) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), EVENTS, name, *actions]


def handler_for(signame: str, mode: str):  # type: ignore[no-untyped-def]
    def handle(signum: int, frame: object) -> None:
        if mode.startswith("exists:"):
            record(f"{signame} exists={os.path.exists(mode[7:])}")
            record("exiting")
            leave(0)
        record(signame)
        if mode.startswith("code:"):
            record("exiting")
            leave(int(mode[5:]))
        if mode == "ignore":
            return
        if mode == "second":
            _state["terms"] += 1
            if _state["terms"] < 2:
                return
        if mode.startswith("slow:"):
            time.sleep(float(mode[5:]))
            record("cleaned")
            leave(0)
        if mode == "waitchild":
            for c in _children:
                c.wait()
        if signame == "TERM" and _state.get("spamming"):
            _state["spam_stop"] = True  # finish the current line first
            return
        record("exiting")
        leave(0)

    return handle


def serve_http(port: int, delay: float) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    began = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = time.monotonic() - began >= delay
            if ok and not _state.get("served200"):
                _state["served200"] = True
                record("served200")
            body = b"ok\n" if ok else b"not yet\n"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    _keep.append(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def spam(count: int | None) -> None:
    pad = "x" * 60
    i = 0
    _state["spamming"] = True
    while count is None or i < count:
        if _state["spam_stop"]:
            break
        os.write(1, f"line {i} {pad}\n".encode())
        i += 1
    _state["spamming"] = False
    if count is None:
        record(f"wrote {i}")
        leave(0)


def info(path: str) -> None:
    try:
        stdin = os.readlink("/proc/self/fd/0")
    except OSError as exc:
        stdin = f"error {exc}"
    data = {
        "pid": os.getpid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "stdin": stdin,
        "stdout": os.readlink("/proc/self/fd/1"),
    }
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.rename(path + ".tmp", path)


def daemon(value: str) -> None:
    name, _, mode = value.partition(":")
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, me(name, f"on=TERM:{mode or 'slow:0.3'}", "forever"))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    wait_record(name, "start")


def main() -> None:
    actions = sys.argv[3:]
    # Handlers first: once ``start`` is recorded, every signal the kid handles is handled.
    for action in actions:
        key, _, value = action.partition("=")
        if key == "on":
            sig, _, mode = value.partition(":")
            signal.signal(getattr(signal, "SIG" + sig), handler_for(sig, mode))
    record(f"start pid={os.getpid()} pgid={os.getpgid(0)}")
    for action in actions:
        key, _, value = action.partition("=")
        if key == "on":
            pass
        elif key == "sleep":
            time.sleep(float(value))
        elif key == "mark":
            record(value)
        elif key == "touch":
            with open(value, "w") as f:
                f.write("x\n")
        elif key == "rm":
            try:
                os.unlink(value)
            except FileNotFoundError:
                pass
        elif key == "waitfile":
            while not os.path.exists(value):
                time.sleep(0.005)
        elif key == "listen":
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", int(value)))
            s.listen(64)
            _keep.append(s)
            record("listening")
        elif key == "http":
            port, delay = value.split(":")
            serve_http(int(port), float(delay))
        elif key == "out":
            print(value, flush=True)
        elif key == "err":
            print(value, file=sys.stderr, flush=True)
        elif key == "spam":
            spam(int(value))
        elif key == "spamterm":
            spam(None)
        elif key == "child":
            _children.append(subprocess.Popen(me(value, "on=TERM:exit", "forever"), stdin=subprocess.DEVNULL))
            wait_record(value, "start")
        elif key == "daemon":
            daemon(value)
        elif key == "info":
            info(value)
        elif key == "env":
            got = os.environ.get(value)
            record(f"env {value} unset" if got is None else f"env {value}={got}")
        elif key == "exit":
            record(f"exit {value}")
            leave(int(value))
        elif key == "kill":
            os.kill(os.getpid(), getattr(signal, "SIG" + value))
            time.sleep(5)
        elif key == "crashonce":
            stamp, remove = value.split(",")
            if not os.path.exists(stamp):
                with open(stamp, "w"):
                    pass
                while not os.path.exists(stamp + ".go"):
                    time.sleep(0.005)
                os.unlink(remove)
                record("exit 1")
                leave(1)
        elif key == "failtimes":
            path, times = value.rsplit(":", 1)
            try:
                with open(path) as f:
                    runs = int(f.read() or 0)
            except FileNotFoundError:
                runs = 0
            with open(path, "w") as f:
                f.write(str(runs + 1))
            if runs < int(times):
                record("exit 1")
                leave(1)
        elif key == "forever":
            while True:
                time.sleep(3600)
        else:
            record(f"bad-action {action}")
            leave(98)
    record("exit 0")
    leave(0)


if __name__ == "__main__":
    main()
