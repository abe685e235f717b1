"""A main process (or grandchild) that records what happens to it, for the PID-1 tests.

    recorder.py DIR NAME [--term MODE] [--int MODE] [--child MODE] [--orphan MODE]

MODE says what a SIGTERM (SIGINT) does: ``exit`` (die of it at once, default), ``ignore``
(record it, carry on), ``slow:SECS`` (record it, clean up for SECS, write NAME.cleaned, exit 0).
``--child MODE`` starts ``NAME.child`` (a plain child: same process group) and ``--orphan MODE``
starts ``NAME.orphan`` by a double fork (its parent exits, so it is re-parented to trinit);
the MODE is their SIGTERM behaviour.

Files in DIR: NAME.info (JSON: pid, ppid, pgid, sid and the Sig* lines of /proc/self/status as
the process started), NAME.log (one ``SIGNAME monotonic_ns`` line per signal, in the order
received), NAME.ready (created once every signal is waited for: nothing sent later is lost).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

ALL = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}


def signame(signum: int) -> str:
    if signal.SIGRTMIN <= signum <= signal.SIGRTMAX:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"
    return signal.Signals(signum).name


def write_atomic(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def wait_file(path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"recorder: {path} did not appear")
        time.sleep(0.005)


def status_lines() -> dict[str, str]:
    with open("/proc/self/status") as f:
        lines = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    return {key: lines[key] for key in ("SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd")}


def main() -> None:
    args = sys.argv[1:]
    folder, name = args[0], args[1]
    opts = dict(zip(args[2::2], args[3::2], strict=True))
    base = os.path.join(folder, name)
    info = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        **status_lines(),
    }
    me = [sys.executable, os.path.abspath(__file__), folder]
    if "--child" in opts:
        subprocess.Popen([*me, name + ".child", "--term", opts["--child"]], stdin=subprocess.DEVNULL)
        wait_file(base + ".child.ready")
    if "--orphan" in opts:
        if os.fork() == 0:
            try:
                if os.fork() == 0:
                    os.execv(me[0], [*me, name + ".orphan", "--term", opts["--orphan"]])
            finally:
                os._exit(0)
        os.wait()
        wait_file(base + ".orphan.ready")
    write_atomic(base + ".info", json.dumps(info))
    signal.pthread_sigmask(signal.SIG_BLOCK, ALL)
    fd = os.open(base + ".log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    write_atomic(base + ".ready", "")
    while True:
        got = signal.sigwaitinfo(ALL)
        os.write(fd, f"{signame(got.si_signo)} {time.monotonic_ns()}\n".encode())
        modes: dict[int, str] = {
            signal.SIGTERM: opts.get("--term", "exit"),
            signal.SIGINT: opts.get("--int", "exit"),
        }
        mode = modes.get(got.si_signo, "ignore")
        if mode == "exit":
            signal.signal(got.si_signo, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {got.si_signo})
            os.kill(os.getpid(), got.si_signo)
            time.sleep(10)
            os._exit(99)
        if mode.startswith("slow:"):
            time.sleep(float(mode[5:]))
            write_atomic(base + ".cleaned", str(time.monotonic_ns()))
            os._exit(0)


if __name__ == "__main__":
    main()
