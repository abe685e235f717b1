"""A program that speaks sd_notify itself, with the socket module only (as libsystemd does).

    notifier.py FOLDER serve   # writes FOLDER/pid and FOLDER/env; READY=1 once FOLDER/go exists;
                               # then WATCHDOG=1 every 0.1 s while FOLDER/ping exists
    notifier.py FOLDER spoof   # sends READY=1 and STATUS=spoofed to the NOTIFY_SOCKET of the
                               # process in FOLDER/pid (read from /proc/PID/environ): not its own

Every wait is on a file the test makes, polled every 20 ms: this is the test's program, not trinit.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path


def send(address: str, message: str) -> None:
    target = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), target)


def wait_file(path: Path) -> None:
    while not path.exists():
        time.sleep(0.02)


folder, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "spoof":
    wait_file(folder / "pid")
    pid = (folder / "pid").read_text().strip()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    address = next(e for e in environ if e.startswith(b"NOTIFY_SOCKET=")).split(b"=", 1)[1].decode()
    send(address, "READY=1\nSTATUS=spoofed")
    (folder / "spoofed").write_text(str(os.getpid()))
    time.sleep(3600)

address = os.environ["NOTIFY_SOCKET"]
names = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
(folder / "env").write_text(json.dumps({k: os.environ.get(k) for k in names}))
(folder / "pid").write_text(str(os.getpid()))
wait_file(folder / "go")
send(address, "STATUS=serving\nREADY=1")
while True:
    if (folder / "ping").exists():
        send(address, "WATCHDOG=1")
    time.sleep(0.1)
