#!/usr/bin/env python3
"""What hardening (SPEC §12) costs per start, through trinit's own spawn (``RealOS.spawn``).

Each case spawns ``true`` with one set of hardening keys, ``--runs`` times, the cases
interleaved so a slow moment of the machine hits them all, and measures two things:

- **spawn call**: the time inside ``RealOS.spawn``, which blocks trinit's event loop (the
  vfork returns once the first program of the chain has exec'd);
- **start to exit**: from the spawn until ``true`` has exited and been reaped, which includes
  every helper program of the chain; the **extra** column is its median minus the plain one's.

    python3 bench/harden_spawn.py                  # 300 runs per case
    sudo python3 bench/harden_spawn.py --markdown  # as root: the user switch and capabilities too
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import time
from collections.abc import Sequence

from trinit.config.hardening import Hardening
from trinit.system.environ import Credentials
from trinit.system.harden import tools_needed
from trinit.system.real import RealOS


def cases() -> dict[str, tuple[Hardening | None, Credentials | None]]:
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    with open("/proc/self/oom_score_adj") as f:
        oom = int(f.read())
    limits = (("nofile", 1024, 1024), ("core", 0, 0))
    out: dict[str, tuple[Hardening | None, Credentials | None]] = {
        "no hardening key": (None, None),
        "umask": (Hardening(umask=0o027), None),
        "nice": (Hardening(nice=min(nice + 5, 19)), None),
        "oom_score_adj": (Hardening(oom_score_adj=min(oom + 100, 1000)), None),
        "rlimits": (Hardening(rlimits=limits), None),
        "no_new_privileges": (Hardening(no_new_privileges=True), None),
    }
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        user = Credentials(uid=nobody.pw_uid, gid=nobody.pw_gid, groups=(nobody.pw_gid,), name="nobody")
        out["user (no key)"] = (None, user)
        out["user + capabilities"] = (Hardening(capabilities=("NET_BIND_SERVICE",)), user)
        out["user + every key"] = (
            Hardening(
                umask=0o027,
                rlimits=limits,
                no_new_privileges=True,
                capabilities=("NET_BIND_SERVICE",),
                oom_score_adj=min(oom + 100, 1000),
                nice=min(nice + 5, 19),
            ),
            user,
        )
    return out


def one(real: RealOS, program: str, hardening: Hardening | None, creds: Credentials | None) -> tuple[float, float]:
    """(spawn call, start to exit) in seconds."""
    start = time.perf_counter()
    pid = real.spawn([program], env=os.environ, creds=creds, hardening=hardening, inherit_environ=True)
    spawned = time.perf_counter()
    _, status = os.waitpid(pid, 0)
    done = time.perf_counter()
    real.release(pid, status)
    if status != 0:
        raise SystemExit(f"{program} with {hardening} exited with wait status {status}")
    return spawned - start, done - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    args = parser.parse_args(argv)
    program = shutil.which("true") or "/bin/true"
    real = RealOS()
    table = cases()
    calls: dict[str, list[float]] = {name: [] for name in table}
    totals: dict[str, list[float]] = {name: [] for name in table}
    for hardening, creds in table.values():  # warm up: the helpers' pages, the lookups
        one(real, program, hardening, creds)
    for _ in range(args.runs):
        for name, (hardening, creds) in table.items():
            call, total = one(real, program, hardening, creds)
            calls[name].append(call)
            totals[name].append(total)
    base = statistics.median(totals["no hardening key"])
    rows = []
    for name, (hardening, creds) in table.items():
        helpers = [tool for tool, _ in tools_needed(hardening, creds is not None)] if hardening else []
        total = statistics.median(totals[name])
        rows.append(
            {
                "case": name,
                "helpers": " + ".join(helpers) or "-",
                "spawn_call_us": round(statistics.median(calls[name]) * 1e6),
                "start_to_exit_ms": round(total * 1e3, 3),
                "extra_ms": round((total - base) * 1e3, 3),
            }
        )
    print(f"{args.runs} runs per case, medians; {os.cpu_count()} CPUs, uid {os.geteuid()}")
    if args.markdown:
        print("\n| case | helpers | spawn call µs | start→exit ms | extra ms |\n|---|---|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['case']} | {r['helpers']} | {r['spawn_call_us']} | {r['start_to_exit_ms']:.2f} "
                f"| {r['extra_ms']:+.2f} |"
            )
    else:
        for r in rows:
            print(
                f"{r['case']:<22} {r['helpers']:<38} spawn {r['spawn_call_us']:>5} µs   "
                f"start->exit {r['start_to_exit_ms']:6.2f} ms   extra {r['extra_ms']:+6.2f} ms"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
