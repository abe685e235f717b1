"""A real HTTP server for health checks: 200 for its first GOOD requests, then 500 for good.

    http_health.py PORT GOOD LOG

Each request appends ``PID N CODE`` to LOG, so a test sees which run answered what.
A GOOD of -1 accepts connections but never answers (a hung server).
"""

from __future__ import annotations

import http.server
import os
import socket
import sys
import time

port, good, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

if good < 0:
    with socket.create_server(("127.0.0.1", port), backlog=64) as listener:
        held = []
        while True:  # accept and hold every connection, answer nothing
            conn, _ = listener.accept()
            held.append(conn)
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {len(held)} hung {time.monotonic():.3f}\n")

count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        global count
        count += 1
        code = 200 if count <= good else 500
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {count} {code}\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
