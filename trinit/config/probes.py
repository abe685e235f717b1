"""Readiness probes as typed, already-parsed targets, and ``ReadySpec`` that holds one.

One parser per probe kind turns the user's text into the object the runtime uses as it
is: host names are checked and IDNA-encoded here, ports are ASCII digits from 1 to
65535, a URL is split into what to connect to and the request line and Host header to
send, a regex is compiled.  Whatever passes can be probed without any error other than
"not ready"; whatever cannot is a ConfigError naming the key, before anything starts.

URLs with a user or password (``http://u:p@host/``) are rejected: a probe sends no
credentials, and silently dropping them would probe something else than the user meant.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs
import idna

from .._errors import ConfigError
from . import defaults
from .values import INVALID, Bad, ProbeKind, Problems, argv, did_you_mean, positive_duration, show, text


@attrs.frozen
class ExecProbe:
    """Ready when this argv exits 0 within ``attempt_timeout``."""

    argv: tuple[str, ...]


@attrs.frozen
class TcpProbe:
    """Ready when a TCP connection to ``host`` (ASCII: IDNA-encoded, IPv6 without brackets) opens."""

    host: str
    port: int


@attrs.frozen
class HttpProbe:
    """Ready when a GET answers 2xx or 3xx; every field is ASCII, ready to go on the wire."""

    scheme: str
    host: str
    port: int
    #: The request target: path (``/`` at least) and query, percent-encoded, no fragment.
    path_and_query: str
    #: The Host header: the host as the URL gave it (brackets for IPv6), with an explicit port.
    host_header: str

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@attrs.frozen
class FileProbe:
    """Ready when ``path`` exists."""

    path: str


@attrs.frozen
class LogProbe:
    """Ready when a line of the process's output matches ``pattern``."""

    pattern: re.Pattern[str]


@attrs.frozen
class NotifyProbe:
    """Ready when the process sends ``READY=1`` on its ``NOTIFY_SOCKET`` (sd_notify, SPEC §9)."""


@attrs.frozen
class FdProbe:
    """Ready when the process writes a newline to its fd ``fd`` (s6's convention, SPEC §9)."""

    fd: int


Probe: TypeAlias = ExecProbe | TcpProbe | HttpProbe | FileProbe | LogProbe | NotifyProbe | FdProbe

_TCP_HINT = 'must be "host:port" like "127.0.0.1:8080"'
_HTTP_HINT = 'must be an http:// or https:// URL like "http://127.0.0.1:8080/health"'
#: Characters that cannot be part of a host name, whatever the resolver thinks of the rest.
_NOT_IN_HOST = re.compile(r"[\x00-\x20\x7f/?#@\[\]\\%:]")
#: Characters kept as they are in a request target; everything else is percent-encoded.
_PATH_SAFE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%\[\]]")


def _host(raw: str) -> tuple[str, str]:
    """``(host to connect to, host as the Host header shows it)``; raises ValueError."""
    if raw.startswith("["):
        if not raw.endswith("]") or len(raw) < 3:
            raise ValueError("an IPv6 address needs both brackets, as in [::1]")
        address = raw[1:-1]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise ValueError(f"{address!r} is not an IPv6 address") from None
        return _labels_fit(address), raw
    if not raw:
        raise ValueError("the host is empty")
    if ":" in raw:
        raise ValueError("an IPv6 address needs brackets, as in [::1]:8080")
    if _NOT_IN_HOST.search(raw):
        raise ValueError(f"the host {raw!r} holds a character a host name cannot have")
    if raw.isascii():
        host = raw.lower()
    else:
        try:
            # As trio would encode it when connecting (IDNA 2008 with UTS 46 mapping).
            host = idna.encode(raw, uts46=True).decode("ascii")
        except (UnicodeError, ValueError) as exc:
            raise ValueError(f"the host {raw!r} is not a valid international name ({exc})") from None
    return _labels_fit(host), host


def _labels_fit(host: str) -> str:
    """The rule Python's resolver applies even to ASCII names (its IDNA codec): each
    dot-separated part 1 to 63 characters, the last one may be empty (a trailing dot)."""
    *labels, last = host.split(".")
    if any(not 0 < len(label) < 64 for label in labels) or len(last) >= 64:
        raise ValueError(f"each dot-separated part of the host must be 1 to 63 characters (got {host!r})")
    return host


def _port(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5) or not 0 < int(raw) < 65536:
        raise ValueError(f"the port must be a number from 1 to 65535 (got {raw!r})")
    return int(raw)


def _split_host_port(raw: str) -> tuple[str, str | None]:
    """``"host:port"`` or ``"[v6]:port"`` into its parts; port None when there is none."""
    if raw.startswith("["):
        end = raw.find("]")
        if end == -1:
            return raw, None
        rest = raw[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("only a :port may follow the bracketed IPv6 address")
        return raw[: end + 1], (rest[1:] if rest else None)
    host, sep, port = raw.rpartition(":")
    return (host, port) if sep else (raw, None)


def tcp_probe(value: object) -> TcpProbe:
    target = text(value)
    try:
        host, port = _split_host_port(target)
        if port is None:
            raise ValueError("the port is missing")
        address, _ = _host(host)
        return TcpProbe(address, _port(port))
    except ValueError as exc:
        raise Bad(f"{_TCP_HINT} (got {show(value)}): {exc}") from None


def http_probe(value: object) -> HttpProbe:
    target = text(value)
    scheme, sep, rest = target.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise Bad(f"{_HTTP_HINT} (got {show(value)})")
    authority_end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    authority, tail = rest[:authority_end], rest[authority_end:].partition("#")[0]
    try:
        if "@" in authority:
            raise ValueError("a probe sends no user or password; remove the part before @")
        raw_host, raw_port = _split_host_port(authority)
        host, header = _host(raw_host)
        port = _port(raw_port) if raw_port is not None else (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise Bad(f"{_HTTP_HINT} (got {show(value)}): {exc}") from None
    if raw_port is not None:
        header = f"{header}:{port}"
    if not tail.startswith("/"):
        tail = "/" + tail
    path = "".join(c if _PATH_SAFE.fullmatch(c) else _percent(c) for c in tail)
    return HttpProbe(scheme, host, port, path, header)


def _percent(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))


def file_probe(value: object) -> FileProbe:
    return FileProbe(text(value))


def log_probe(value: object) -> LogProbe:
    pattern = text(value)
    try:
        return LogProbe(re.compile(pattern))
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise Bad(f"is not a valid regular expression: {exc} (got {show(value)})") from None


def exec_probe(value: object) -> ExecProbe:
    return ExecProbe(argv(value))


def notify_probe(value: object) -> NotifyProbe:
    if value is not True:
        raise Bad(
            f"must be true, to wait for READY=1 on $NOTIFY_SOCKET (got {show(value)}); "
            "remove ready to count the process ready as soon as it runs"
        )
    return NotifyProbe()


#: The highest ``ready.fd``: far above what programs use, well below any open-files limit.
MAX_READY_FD = 1023


def fd_probe(value: object) -> FdProbe:
    if isinstance(value, bool) or not isinstance(value, int) or not 3 <= value <= MAX_READY_FD:
        raise Bad(
            f"must be a file descriptor number from 3 to {MAX_READY_FD} (0, 1 and 2 are stdin, "
            f"stdout and stderr) (got {show(value)})"
        )
    return FdProbe(value)


PROBES: dict[str, Any] = {
    "exec": exec_probe,
    "tcp": tcp_probe,
    "http": http_probe,
    "file": file_probe,
    "log": log_probe,
    "notify": notify_probe,
    "fd": fd_probe,
}
PROBE_TIMING = ("interval", "attempt_timeout", "timeout")
#: Readiness the process announces itself: trinit only waits, so only ``timeout`` applies.
ANNOUNCED = ("notify", "fd")


_KINDS = "exec, tcp, http, file, log, notify or fd"


def _target(probe: Probe, given: object) -> tuple[str, ...] | str:
    """What ``ReadySpec.target`` keeps: the user's text (argv as a tuple)."""
    if isinstance(probe, ExecProbe):
        return probe.argv
    if isinstance(probe, NotifyProbe):
        return "READY=1"
    if isinstance(probe, FdProbe):
        return str(probe.fd)
    assert isinstance(given, str)
    return given


def ready_values(kind: object, target: object, timing: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """The one validator of a probe: kind, target and timing to ``ReadySpec`` fields.

    Adds a message to ``problems`` for each bad part; the result is complete only when
    none was added.  ``target`` is kept as the user wrote it (argv as a tuple), for
    messages and ``trinit check``; ``probe`` is what the runtime uses.
    """
    values: dict[str, Any] = {
        "interval": defaults.READY_INTERVAL,
        "attempt_timeout": defaults.READY_ATTEMPT_TIMEOUT,
        "timeout": defaults.READY_TIMEOUT,
    }
    if kind is None:
        pass  # the table named no probe, or several: already reported
    elif not isinstance(kind, str) or kind not in PROBES:
        problems.add("ready", f"the probe kind must be {_KINDS} (got {show(kind)})")
    else:
        probe = problems.parse(f"ready.{kind}", target, PROBES[kind])
        if probe is not INVALID:
            values.update(kind=kind, probe=probe, target=_target(probe, target))
    for key, raw in timing.items():
        values[key] = problems.parse(f"ready.{key}", raw, positive_duration)
        if kind in ANNOUNCED and key != "timeout":
            problems.add(
                f"ready.{key}", f"not used with {kind}: trinit waits for the process to say it is ready"
            )
    return values


@attrs.frozen(init=False)
class ReadySpec:
    """A readiness probe: exactly one kind, with its timing.

    ``ReadySpec("tcp", "127.0.0.1:8080")`` validates like ``ready = { tcp = ... }`` does
    (ConfigError on a bad value); ``probe`` is the parsed target.
    """

    kind: ProbeKind
    #: As given: exec: the argv; tcp: "host:port"; http: the URL; file: a path; log: a regex;
    #: notify: "READY=1"; fd: the number as text.
    target: tuple[str, ...] | str
    probe: Probe = attrs.field(repr=False)
    interval: float = defaults.READY_INTERVAL
    attempt_timeout: float = defaults.READY_ATTEMPT_TIMEOUT
    timeout: float = defaults.READY_TIMEOUT

    def __init__(
        self,
        kind: str,
        target: object,
        interval: float | str | None = None,
        attempt_timeout: float | str | None = None,
        timeout: float | str | None = None,
    ) -> None:
        timing = {"interval": interval, "attempt_timeout": attempt_timeout, "timeout": timeout}
        problems = Problems("")
        values = ready_values(kind, target, {k: v for k, v in timing.items() if v is not None}, problems)
        if problems.errors:
            raise ConfigError(problems.errors)
        self.__attrs_init__(**values)

    @classmethod
    def _trusted(cls, values: dict[str, Any]) -> ReadySpec:
        """Build from what ``ready_values`` returned without a problem."""
        spec = cls.__new__(cls)
        spec.__attrs_init__(**values)
        return spec


def ready_probe(value: object, problems: Problems) -> ReadySpec | None:
    """The ``ready`` table's shape (known keys, exactly one probe); ``ready_values`` does the rest."""
    if isinstance(value, ReadySpec):
        return value  # validated when it was built
    if not isinstance(value, Mapping):
        problems.add("ready", f'must be a table like {{ tcp = "127.0.0.1:8080" }} (got {show(value)})')
        return None
    before = len(problems.errors)
    for key in value:
        if key not in PROBES and key not in PROBE_TIMING:
            hint = did_you_mean(str(key), (*PROBES, *PROBE_TIMING))
            problems.add("ready", f'unknown key "{key}"{hint}')
    kinds = [k for k in PROBES if k in value]
    if not kinds:
        problems.add("ready", "needs one probe: exec, tcp, http, file, log, notify or fd")
    elif len(kinds) > 1:
        problems.add("ready", f"has {' and '.join(kinds)}: give exactly one probe")
    timing = {key: value[key] for key in PROBE_TIMING if key in value}
    kind = kinds[0] if len(kinds) == 1 else None
    values = ready_values(kind, value[kind] if kind else None, timing, problems)
    if len(problems.errors) > before:
        return None
    return ReadySpec._trusted(values)
