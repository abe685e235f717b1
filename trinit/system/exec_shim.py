"""A child that needs something only the child can do before its program runs.

subprocess's C helper (vfork+exec, safe with threads) can pass an fd only at its own
number, and the child's own pid is not known before it exists. ``ready = { fd = N }``
needs the pipe at exactly fd N, and ``watchdog`` needs ``WATCHDOG_PID`` to be the child's
pid, as systemd sets it. For those processes only, the child first runs this shim in
trinit's own interpreter (``-I -S``: no site, no environment, ~10 ms), which moves the fd,
sets the variable, restores the signal dispositions Python changed (SIGPIPE and SIGXFSZ
ignored) and execs the program: same pid, same mask, same credentials and cwd.
"""

from __future__ import annotations

import sys

# Run as `python -I -S -c SHIM FROM_FD TO_FD PID_VAR PATH ARGV...`: nothing but os/signal/sys.
SHIM = """\
import os, signal, sys
src, dst, var, path, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
if src >= 0:
    if src != dst:
        os.dup2(src, dst)
        os.close(src)
    else:
        os.set_inheritable(dst, True)
env = dict(os.environ)
if var:
    env[var] = str(os.getpid())
for sig in (signal.SIGPIPE, signal.SIGXFSZ):
    signal.signal(sig, signal.SIG_DFL)
try:
    os.execve(path, argv, env)
except OSError as exc:
    sys.stderr.write(f"trinit: cannot run {path}: {exc.strerror}\\n")
    os._exit(126 if os.path.exists(path) else 127)
"""


def shim_argv(path: str, argv: list[str], move_fd: tuple[int, int] | None, pid_env: str | None) -> list[str]:
    """The argv that runs ``path`` (resolved already) with ``argv`` through the shim.

    ``move_fd``: (fd in trinit, fd the program gets); ``pid_env``: a variable set to its pid.
    """
    src, dst = move_fd if move_fd is not None else (-1, -1)
    return [sys.executable, "-I", "-S", "-c", SHIM, str(src), str(dst), pid_env or "", path, *argv]
