"""One bootstrap of process-wide effects for the CLI, ``trinit.run`` and ``open_supervisor`` (issue 9)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trinit
from trinit import Config, ConfigError, ProcessSpec
from trinit.boot.signals import FAULTS, FORWARDED, SHUTDOWN, SWALLOWED
from trinit.runtime.bootstrap import handled_signals, prepare
from trinit.runtime.options import RuntimeOptions
from trinit.system import environ
from trinit.testing import FakeOS

USR1 = signal.SIGUSR1


def test_prepare_makes_a_subreaper_only_when_reaping_orphans_and_not_pid1() -> None:
    fake = FakeOS({})
    prepare(fake, RuntimeOptions(reap_orphans=True), owns_process=True, hold_signals=False)
    assert fake.calls == [("raise_nofile", ()), ("set_subreaper", ())]
    pid1 = FakeOS({}, pid1=True)
    prepare(pid1, RuntimeOptions(reap_orphans=True, pdeathsig=USR1), owns_process=True, hold_signals=False)
    assert pid1.calls == [("raise_nofile", ()), ("set_pdeathsig", (USR1,))]


def test_open_supervisor_by_default_touches_nothing_process_wide() -> None:
    library = FakeOS({})
    prepare(library, RuntimeOptions(), owns_process=False, hold_signals=False)
    assert library.calls == []
    library = FakeOS({})
    prepare(library, RuntimeOptions(reap_orphans=True), owns_process=False, hold_signals=False)
    assert library.calls == [("set_subreaper", ())]


def test_handled_signals_follow_the_options() -> None:
    assert handled_signals(RuntimeOptions()) == frozenset()
    assert handled_signals(RuntimeOptions(reap_orphans=True)) == {signal.SIGCHLD}
    everything = FORWARDED | FAULTS | SHUTDOWN | SWALLOWED
    assert handled_signals(RuntimeOptions(handle_signals=True)) == everything
    assert handled_signals(RuntimeOptions(handle_signals=True, reap_orphans=True, pdeathsig=34)) == (
        everything | {signal.SIGCHLD, 34}
    )


@pytest.mark.parametrize("uncatchable", [signal.SIGKILL, signal.SIGSTOP])
def test_pdeathsig_kill_gets_no_handler(uncatchable: int) -> None:
    """Issue 10 defect 2: `-p SIGKILL` tried to install a handler for SIGKILL (EINVAL, exit 70)."""
    options = RuntimeOptions(handle_signals=True, pdeathsig=uncatchable)
    assert uncatchable not in handled_signals(options)
    fake = FakeOS({})
    prepare(fake, options, owns_process=False, hold_signals=False)
    assert fake.calls == [("set_pdeathsig", (uncatchable,))]


def test_holding_signals_blocks_exactly_the_handled_ones() -> None:
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        prepare(FakeOS({}), RuntimeOptions(reap_orphans=True), owns_process=True, hold_signals=True)
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == {signal.SIGCHLD}
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def test_run_raises_a_config_error_instead_of_exiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A config that fails at start (a user removed since it was checked) raises in the caller,
    before anything process-wide changed."""

    def gone(spec: ProcessSpec) -> None:
        raise ConfigError([f'process "{spec.name}": user: no user named "gone"'])

    monkeypatch.setattr(environ, "resolve_credentials", gone)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with pytest.raises(ConfigError, match='no user named "gone"'):
        trinit.run(Config([ProcessSpec("app", ["true"], main=True)]))
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask


def test_run_becomes_a_subreaper_as_documented(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            """
            import ctypes, sys
            import trinit

            libc = ctypes.CDLL(None, use_errno=True)
            before = ctypes.c_int(-1)
            libc.prctl(37, ctypes.byref(before), 0, 0, 0)
            config = trinit.Config([trinit.ProcessSpec("app", ["true"], main=True)])
            code = trinit.run(config, handle_signals=False)
            after = ctypes.c_int(-1)
            libc.prctl(37, ctypes.byref(after), 0, 0, 0)
            print(code, before.value, after.value)
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0", "1"], proc.stderr
