"""The version and every default, in one place.

Plain constants with no imports: the fast start (``trinit.boot``) reads them before
trio or attrs is loaded, the model uses them for its field defaults, and the docs quote
them. Change a default here and nowhere else.
"""

from __future__ import annotations

VERSION = "0.1.0"

# [trinit]
SHUTDOWN_TIMEOUT = 9.0  # inside Docker's 10 s stop window
LOG_FORMAT = "text"
CONTROL_SOCKET = "/run/trinit/control.sock"

# [process.NAME]
STOP_TIMEOUT = 5.0
RESTART = "no"
RESTART_DELAY = 0.5
RESTART_DELAY_MAX = 30.0
RESTART_RESET_AFTER = 60.0
ON_FAILURE = "shutdown"
RETRIES = 0
PHASE = "run"
OUTPUT = "inherit"
HOOK_TIMEOUT = 30.0

# ready = { ... }
READY_INTERVAL = 0.1
READY_ATTEMPT_TIMEOUT = 1.0
READY_TIMEOUT = 60.0
SUCCESS_CODES = frozenset({0})

# health = { ... } (SPEC §9)
HEALTH_INTERVAL = 10.0
HEALTH_ATTEMPT_TIMEOUT = 1.0
HEALTH_FAILURES = 3
