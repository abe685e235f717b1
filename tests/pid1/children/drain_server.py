"""An HTTP server that drains on request: ``drain_server.py EVENTS PORT``.

  GET /            200 "ok" (the readiness probe)
  GET /slow?s=S    records ``begun /slow``, takes S seconds, records ``done /slow``, 200 "slow"
  POST /drain      records ``drain-begun``, stops accepting (the listening socket is closed, so new
                   connections are refused), waits for the requests in flight, records ``drained``,
                   then answers 200 "drained"
  SIGTERM          records ``TERM`` and exits 0

Records go to EVENTS as orch/kid.py writes them: ``EVENT <time.monotonic_ns()> web WHAT``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

EVENTS, PORT = sys.argv[1], int(sys.argv[2])
_fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
_in_flight = 0
_idle = threading.Condition()


def record(what: str) -> None:
    os.write(_fd, f"EVENT {time.monotonic_ns()} web {what}\n".encode())


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        global _in_flight
        url = urlsplit(self.path)
        if url.path != "/slow":
            self.answer(b"ok")
            return
        with _idle:
            _in_flight += 1
        try:
            record("begun /slow")
            time.sleep(float(parse_qs(url.query)["s"][0]))
            self.answer(b"slow")
            record("done /slow")
        finally:
            with _idle:
                _in_flight -= 1
                _idle.notify_all()

    def do_POST(self) -> None:
        record("drain-begun")
        server.shutdown()  # the accept loop ends (it runs in another thread) ...
        server.server_close()  # ... and the listening socket closes: new connections are refused
        with _idle:
            _idle.wait_for(lambda: _in_flight == 0)
        record("drained")
        self.answer(b"drained")


def on_term(signum: int, frame: object) -> None:
    record("TERM")
    os._exit(0)


signal.signal(signal.SIGTERM, on_term)
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
server.block_on_close = False  # server_close() in the drain must not join the requests it waits for
threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
record("listening")
while True:
    signal.pause()
