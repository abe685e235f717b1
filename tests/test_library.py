"""The library (SPEC §7): ``open_supervisor`` inside a trio program, ``trinit.run``, and the
shutdown that leaving the block runs (SPEC §5).

Most tests here run real processes (``sys.executable -c``/a small child script) and check what
the children themselves recorded: which signals reached them, in which order, and that none of
them outlives the block. Library mode must touch nothing process-wide: no signal handlers, no
subreaper, no ``waitpid(-1)`` (the churn test). The rules of ``stop()``/``restart()``/
``wait_ready()`` are also checked against :mod:`trinit.testing`'s fake on trio's autojump clock.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

import trinit
from trinit import Config, ProcessSpec
from trinit.testing import Behaviour, Exit, FakeOS, make_supervisor

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent
TERM, KILL, INT, HUP = signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP

#: A supervised child: records its start, every signal it gets and its exit in a shared file
#: (one O_APPEND write per line), prints "ready" once its handlers are in place.
#: argv: NAME RECORD [term_delay=S] [term_code=N] [usr1_code=N] [ignore_term=1]
CHILD = r"""
import os, signal, sys, time

name, record = sys.argv[1], sys.argv[2]
opts = dict(arg.split("=", 1) for arg in sys.argv[3:])
term_delay = float(opts.get("term_delay", "0"))
term_code = int(opts.get("term_code", "0"))
usr1_code = int(opts.get("usr1_code", "3"))
ignore_term = opts.get("ignore_term") == "1"
fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

def rec(what):
    os.write(fd, f"{name} {what} {os.getpid()} {time.monotonic_ns()}\n".encode())

def on_signal(signum, frame):
    rec(signal.Signals(signum).name[3:])
    if signum in (signal.SIGTERM, signal.SIGINT) and not ignore_term:
        time.sleep(term_delay)
        rec("exit")
        os._exit(term_code)
    if signum == signal.SIGUSR1:
        rec("exit")
        os._exit(usr1_code)

for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, on_signal)
rec("start")
print("ready", flush=True)
while True:
    signal.pause()
"""


class Children:
    """Builds ProcessSpecs running :data:`CHILD` and reads what the children recorded."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "child.py"
        self.script.write_text(CHILD)
        self.record = tmp_path / "record.txt"
        self.record.touch()

    def argv(self, name: str, **opts: object) -> list[str]:
        return [PY, str(self.script), name, str(self.record), *(f"{k}={v}" for k, v in opts.items())]

    def spec(self, name: str, *, opts: dict[str, object] | None = None, **keys: Any) -> ProcessSpec:
        keys.setdefault("ready", {"log": "^ready$", "interval": 0.01})
        keys.setdefault("output", "null")
        return ProcessSpec(name=name, command=self.argv(name, **(opts or {})), **keys)

    def records(self) -> list[tuple[str, str, int]]:
        """(name, what, pid) per line, in the order written."""
        out = []
        for line in self.record.read_text().splitlines():
            name, what, pid, _ns = line.split()
            out.append((name, what, int(pid)))
        return out

    def events(self, what: str | Sequence[str]) -> list[tuple[str, str]]:
        whats = {what} if isinstance(what, str) else set(what)
        return [(n, w) for n, w, _ in self.records() if w in whats]

    def got(self, name: str, what: str, pid: int | None = None) -> bool:
        return any(n == name and w == what and (pid is None or p == pid) for n, w, p in self.records())


@pytest.fixture
def kids(tmp_path: Path) -> Children:
    return Children(tmp_path)


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` (real time) until it holds."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def alive(pid: int) -> bool:
    """True while ``pid`` exists at all (a zombie counts: it was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_gone(pids: Sequence[int]) -> None:
    left = [pid for pid in pids if alive(pid)]
    assert not left, f"processes outlived the block: {left} ({[_proc_stat(p) for p in left]})"


def _proc_stat(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().strip()
    except OSError:
        return "?"


def live_pids(sup: trinit.Supervisor) -> list[int]:
    return [st.pid for st in sup.status().values() if st.pid is not None]


def chain(kids: Children, **stop: object) -> Config:
    """db <- cache <- app (app after cache after db); each takes 0.2 s to stop."""
    opts = {"term_delay": 0.2, **stop}
    return Config(
        processes=[
            kids.spec("db", opts=opts),
            kids.spec("cache", opts=opts, after=["db"]),
            kids.spec("app", opts=opts, after=["cache"]),
        ],
        shutdown_timeout=20,
    )


REVERSE_ORDER = [
    ("app", "TERM"),
    ("app", "exit"),
    ("cache", "TERM"),
    ("cache", "exit"),
    ("db", "TERM"),
    ("db", "exit"),
]


# ================================================================================ the handle


async def test_the_supervisor_handle_end_to_end(kids: Children) -> None:
    config = Config(
        processes=[
            kids.spec("cache", restart="on-failure"),
            ProcessSpec(name="setup", command=[PY, "-c", "pass"], oneshot=True),
            kids.spec("app", main=True, after={"cache": "ready", "setup": "completed"}),
        ],
        shutdown_timeout=20,
    )
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("app")
        st = sup.status()
        assert set(st) == {"cache", "setup", "app"}
        app = st["app"]
        assert isinstance(app, trinit.ProcessStatus)
        assert app.name == "app" and app.state == "ready" and app.restarts == 0 and app.last_exit is None
        assert app.pid is not None and kids.got("app", "start", app.pid)
        assert st["setup"].state == "exited" and st["setup"].pid is None
        assert st["setup"].last_exit == trinit.ExitStatus(code=0)

        # send_signal reaches the process itself.
        sup.send_signal("app", HUP)
        await until(lambda: kids.got("app", "HUP", app.pid), what="app to record SIGHUP")
        assert sup.status()["app"].state == "ready"

        # A process that is not running: ProcessLookupError; an unknown name: KeyError.
        with pytest.raises(ProcessLookupError):
            sup.send_signal("setup", HUP)
        with pytest.raises(KeyError):
            sup.send_signal("nope", HUP)

        # restart: the old instance stops with its stop signal, a new one starts, counted.
        old = sup.status()["cache"].pid
        assert old is not None
        await sup.restart("cache")
        await until(lambda: sup.status()["cache"].pid not in (None, old), what="a new cache pid")
        await sup.wait_ready("cache")
        cache = sup.status()["cache"]
        assert cache.pid != old and cache.restarts == 1 and cache.state == "ready"
        assert cache.last_exit == trinit.ExitStatus(code=0)  # the child exits 0 on SIGTERM
        assert kids.got("cache", "TERM", old) and kids.got("cache", "start", cache.pid)
        assert not alive(old)
        # its dependents are left running
        assert sup.status()["app"].pid == app.pid

        # stop: graceful, and it stays stopped.
        pid = cache.pid
        assert pid is not None
        await sup.stop("cache")
        assert kids.got("cache", "TERM", pid) and kids.got("cache", "exit", pid)
        assert not alive(pid)
        stopped = sup.status()["cache"]
        assert stopped.state == "exited" and stopped.pid is None and stopped.restarts == 1
        await trio.sleep(0.5)  # restart = "on-failure" must not bring it back either
        assert sup.status()["cache"].state == "exited"
        assert len([r for r in kids.records() if r[:2] == ("cache", "start")]) == 2
        with pytest.raises(ProcessLookupError):
            sup.send_signal("cache", HUP)

        # wait(): the main process exits (SIGUSR1 -> code 3); the shutdown finishes; its code.
        sup.send_signal("app", signal.SIGUSR1)
        with trio.fail_after(20):
            code = await sup.wait()
        assert code == 3
        final = sup.status()
        assert final["app"].state == "exited" and final["app"].last_exit == trinit.ExitStatus(code=3)
        assert all(s.pid is None for s in final.values())
        assert_gone([app.pid])


async def test_restart_then_wait_ready_sees_the_new_instance(kids: Children) -> None:
    """After ``await restart()``, ``wait_ready`` waits for the *new* instance's readiness."""
    config = Config(processes=[kids.spec("cache")], shutdown_timeout=20)
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("cache")
        for n in range(1, 6):
            old = sup.status()["cache"].pid
            await sup.restart("cache")
            await sup.wait_ready("cache")
            st = sup.status()["cache"]
            assert st.state == "ready" and st.restarts == n
            assert st.pid is not None and st.pid != old
            assert kids.got("cache", "start", st.pid)


async def test_stop_and_restart_of_a_stopped_process(kids: Children) -> None:
    config = Config(processes=[kids.spec("a"), kids.spec("b")], shutdown_timeout=20)
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("a")
        await sup.wait_ready("b")
        b = sup.status()["b"].pid
        await sup.stop("a")
        await sup.stop("a")  # a second stop is a no-op
        assert sup.status()["a"].state == "exited"
        assert sup.status()["b"].pid == b and sup.status()["b"].state == "ready"
        assert kids.events("TERM") == [("a", "TERM")]
        # restart() of a stopped process starts it again.
        await sup.restart("a")
        await sup.wait_ready("a")
        assert sup.status()["a"].pid is not None


async def test_wait_ready_raises_when_the_process_cannot_become_ready(kids: Children) -> None:
    config = Config(
        processes=[
            ProcessSpec(
                name="bad",
                command=[PY, "-c", "import time; time.sleep(0.3); raise SystemExit(4)"],
                ready={"file": "/nonexistent/never"},
                on_failure="ignore",
            ),
            kids.spec("dep", after={"bad": "ready"}, on_failure="ignore"),
            kids.spec("ok"),
        ],
        shutdown_timeout=20,
    )
    async with trinit.open_supervisor(config) as sup:
        with trio.fail_after(10):
            await sup.wait_ready("ok")
            await until(lambda: sup.status()["bad"].state == "failed", what="bad to fail")
            with pytest.raises(trinit.TrinitError, match="bad"):
                await sup.wait_ready("bad")
            await until(lambda: sup.status()["dep"].state == "skipped", what="dep to be skipped")
            with pytest.raises(trinit.TrinitError, match="dep"):
                await sup.wait_ready("dep")
        assert sup.status()["bad"].last_exit == trinit.ExitStatus(code=4)
        assert sup.status()["ok"].state == "ready"


async def test_start_failure_is_a_status_not_an_exception(tmp_path: Path) -> None:
    config = Config(
        processes=[ProcessSpec(name="ghost", command=[str(tmp_path / "missing")], on_failure="ignore")],
        shutdown_timeout=5,
    )
    async with trinit.open_supervisor(config) as sup:
        with trio.fail_after(10):
            await until(lambda: sup.status()["ghost"].state == "failed", what="ghost to fail")
        last = sup.status()["ghost"].last_exit
        assert last is not None and last.exit_code == 127
        with trio.fail_after(10):
            assert await sup.wait() == 0  # no main, everything final, failure ignored


# ================================================================================ leaving the block


async def _run_chain_and_leave(kids: Children, how: str) -> list[int]:
    pids: list[int] = []
    config = chain(kids)

    async def body() -> None:
        async with trinit.open_supervisor(config) as sup:
            await sup.wait_ready("app")
            pids.extend(live_pids(sup))
            assert len(pids) == 3
            assert kids.events("TERM") == []
            if how == "exception":
                raise LookupError("boom")
            if how == "cancel":
                await trio.sleep_forever()

    if how == "normal":
        await body()
    elif how == "exception":
        try:
            await body()
        except BaseException as exc:  # the error itself: see test_an_error_in_the_block_propagates_as_is
            assert _leaves(exc) == [LookupError], exc
        else:
            raise AssertionError("the exception was swallowed")
    else:
        with trio.move_on_after(3) as scope:
            await body()
        assert scope.cancelled_caught
    return pids


def _leaves(exc: BaseException) -> list[type[BaseException]]:
    if isinstance(exc, BaseExceptionGroup):
        return [t for e in exc.exceptions for t in _leaves(e)]
    return [type(exc)]


@pytest.mark.parametrize("how", ["normal", "exception", "cancel"])
async def test_leaving_the_block_shuts_down_in_reverse_dependency_order(kids: Children, how: str) -> None:
    with trio.fail_after(30):
        pids = await _run_chain_and_leave(kids, how)
    assert kids.events(["TERM", "exit"]) == REVERSE_ORDER
    assert_gone(pids)


async def test_an_error_in_the_block_propagates_as_is(kids: Children) -> None:
    """``except LookupError`` around the block must catch a LookupError raised in it (not an
    ExceptionGroup made by the supervisor's internal nursery)."""
    config = Config(processes=[kids.spec("app")], shutdown_timeout=20)
    with pytest.raises(LookupError, match="boom"):
        async with trinit.open_supervisor(config) as sup:
            await sup.wait_ready("app")
            raise LookupError("boom")
    assert kids.events("TERM") == [("app", "TERM")]


async def test_cancellation_cannot_cut_the_shutdown_short(kids: Children) -> None:
    """A cancel scope that expires while the shutdown runs: the processes still get their grace."""
    config = chain(kids, term_delay=0.4)
    pids: list[int] = []
    with trio.move_on_after(2) as scope:
        async with trinit.open_supervisor(config) as sup:
            await sup.wait_ready("app")
            pids = live_pids(sup)
            scope.deadline = trio.current_time() + 0.1  # expires during the shutdown
    # No SIGKILL: every child recorded its own exit after its grace, in order.
    assert kids.events(["TERM", "exit"]) == REVERSE_ORDER
    assert_gone(pids)


async def test_a_stubborn_process_is_killed_after_its_stop_timeout(kids: Children) -> None:
    config = Config(
        processes=[kids.spec("stub", opts={"ignore_term": 1}, stop_timeout=0.5)], shutdown_timeout=20
    )
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("stub")
        pid = sup.status()["stub"].pid
        assert pid is not None
        started = trio.current_time()
    took = trio.current_time() - started
    assert kids.events(["TERM", "exit"]) == [("stub", "TERM")]
    assert sup.status()["stub"].last_exit == trinit.ExitStatus(signal=KILL)
    assert 0.4 < took < 5
    assert_gone([pid])


async def test_shutdown_timeout_bounds_leaving_the_block(kids: Children) -> None:
    config = Config(
        processes=[kids.spec("stub", opts={"ignore_term": 1}, stop_timeout=60)], shutdown_timeout=1
    )
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("stub")
        pid = sup.status()["stub"].pid
        assert pid is not None
        started = trio.current_time()
    assert trio.current_time() - started < 5
    assert_gone([pid])


# ================================================================================ library mode is local


PR_GET_CHILD_SUBREAPER = 37


def subreaper() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    value = ctypes.c_int(-1)
    assert libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) == 0
    return value.value


def handlers() -> dict[int, object]:
    return {s: signal.getsignal(s) for s in signal.valid_signals() if s not in (KILL, signal.SIGSTOP)}


async def test_library_mode_installs_no_handlers_and_is_no_subreaper(kids: Children) -> None:
    before, mask = handlers(), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert subreaper() == 0
    config = Config(processes=[kids.spec("app", forward_signals=True)], shutdown_timeout=20)
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("app")
        assert handlers() == before
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
        assert subreaper() == 0
    assert handlers() == before
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    assert subreaper() == 0


async def test_churn_other_children_keep_their_true_exit_status(kids: Children) -> None:
    """While processes restart all the time, ``trio.run_process`` and ``subprocess.run``
    elsewhere in the program see every exact status: nothing steals it with waitpid(-1)."""
    flappers = [
        ProcessSpec(
            name=f"flap{i}",
            command=[PY, "-S", "-c", "import sys; sys.exit(7)"],
            restart="always",
            restart_delay="10ms",
            restart_delay_max="10ms",
            output="null",
        )
        for i in range(3)
    ]
    config = Config(processes=flappers, shutdown_timeout=10)
    wrong: list[tuple[str, int, int]] = []

    async def trio_child(n: int) -> None:
        if n % 7 == 3:
            sig = (KILL, TERM, signal.SIGUSR1)[n % 3]
            argv = [PY, "-S", "-c", f"import os; os.kill(os.getpid(), {int(sig)})"]
            want = -sig
        else:
            argv = [PY, "-S", "-c", f"import sys; sys.exit({n % 50})"]
            want = n % 50
        got = (await trio.run_process(argv, check=False)).returncode
        if got != want:
            wrong.append(("trio.run_process", want, got))

    def blocking_child(n: int) -> None:
        want = 100 + n
        got = subprocess.run([PY, "-S", "-c", f"import sys; sys.exit({want})"], check=False).returncode
        if got != want:
            wrong.append(("subprocess.run", want, got))

    async with trinit.open_supervisor(config) as sup:
        await until(lambda: sup.status()["flap0"].restarts >= 3, what="the flappers to churn")
        before = sum(s.restarts for s in sup.status().values())
        for batch in range(10):
            async with trio.open_nursery() as nursery:
                for k in range(6):
                    nursery.start_soon(trio_child, batch * 6 + k)
                nursery.start_soon(trio.to_thread.run_sync, blocking_child, batch)
        churned = sum(s.restarts for s in sup.status().values()) - before
        statuses = sup.status()
    assert not wrong, f"wrong exit statuses (where, expected, got): {wrong}"
    assert churned >= 20, f"only {churned} restarts happened during the test: it proved nothing"
    for st in statuses.values():
        assert st.last_exit in (None, trinit.ExitStatus(code=7))


# ================================================================================ several supervisors


async def test_nested_supervisors_each_stop_only_their_own(kids: Children) -> None:
    outer_config = Config(processes=[kids.spec("outer-app"), kids.spec("outer-db")], shutdown_timeout=20)
    inner_config = Config(processes=[kids.spec("inner-app")], shutdown_timeout=20)
    async with trinit.open_supervisor(outer_config) as outer:
        await outer.wait_ready("outer-app")
        await outer.wait_ready("outer-db")
        outer_pids = live_pids(outer)
        async with trinit.open_supervisor(inner_config) as inner:
            await inner.wait_ready("inner-app")
            inner_pids = live_pids(inner)
        assert kids.events("TERM") == [("inner-app", "TERM")]
        assert_gone(inner_pids)
        assert all(alive(p) for p in outer_pids)
        assert {s.state for s in outer.status().values()} == {"ready"}
    assert sorted(kids.events("TERM")) == [("inner-app", "TERM"), ("outer-app", "TERM"), ("outer-db", "TERM")]
    assert_gone(outer_pids)


async def test_side_by_side_supervisors_with_the_same_process_names(kids: Children) -> None:
    """Two supervisors in one nursery, both with a process named "app"."""
    a_cfg = Config(processes=[kids.spec("app", opts={"term_code": 11})], shutdown_timeout=20)
    b_cfg = Config(processes=[kids.spec("app", opts={"term_code": 22})], shutdown_timeout=20)
    sups: dict[str, trinit.Supervisor] = {}
    leave = {"a": trio.Event(), "b": trio.Event()}
    left = {"a": trio.Event(), "b": trio.Event()}

    async def one(key: str, config: Config, task_status: trio.TaskStatus[None]) -> None:
        async with trinit.open_supervisor(config) as sup:
            await sup.wait_ready("app")
            sups[key] = sup
            task_status.started()
            await leave[key].wait()
        left[key].set()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(one, "a", a_cfg)
            await nursery.start(one, "b", b_cfg)
            a_pid, b_pid = sups["a"].status()["app"].pid, sups["b"].status()["app"].pid
            assert a_pid is not None and b_pid is not None and a_pid != b_pid
            leave["a"].set()
            await left["a"].wait()
            assert not alive(a_pid) and alive(b_pid)
            assert [(p, w) for _, w, p in kids.records() if w == "TERM"] == [(a_pid, "TERM")]
            assert sups["a"].status()["app"].last_exit == trinit.ExitStatus(code=11)
            assert sups["b"].status()["app"].state == "ready"
            # a signal through one supervisor reaches only its own process
            sups["b"].send_signal("app", HUP)
            await until(lambda: kids.got("app", "HUP", b_pid), what="b's app to get SIGHUP")
            leave["b"].set()
    assert sups["b"].status()["app"].last_exit == trinit.ExitStatus(code=22)
    assert [w for _, w, p in kids.records() if p == a_pid] == ["start", "TERM", "exit"]
    assert_gone([a_pid, b_pid])


# ================================================================================ handle_signals, reap_orphans


@pytest.mark.parametrize("flag", ["handle_signals", "reap_orphans"])
def test_process_wide_options_need_the_main_thread(flag: str) -> None:
    config = Config(processes=[ProcessSpec(name="app", command=[PY, "-c", "pass"])])
    caught: list[BaseException] = []

    async def main() -> None:
        async with trinit.open_supervisor(config, **{flag: True}):
            raise AssertionError("must not get here")  # pragma: no cover

    def thread() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            caught.append(exc)

    before = handlers()
    t = threading.Thread(target=thread)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert len(caught) == 1
    exc = caught[0]
    assert isinstance(exc, trinit.TrinitError), repr(exc)
    assert "main thread" in str(exc)
    assert handlers() == before
    assert subreaper() == 0


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(body))
    return path


async def _run_script(
    script: Path, kids: Children, *, ready: Callable[[], bool], sig: int | None, timeout: float = 30
) -> tuple[int, str]:
    """Run ``script``; once ``ready()``, send it ``sig``; its code and output (stdout, then stderr).

    The two streams go to separate files: the script's prints and trinit's log lines come
    from different writers and must not interleave mid-line in the assertions.
    """
    out, err = script.with_suffix(".out"), script.with_suffix(".err")
    with out.open("wb") as f, err.open("wb") as g:
        proc = await trio.lowlevel.open_process(
            [PY, str(script), str(kids.script), str(kids.record)], stdout=f, stderr=g
        )
    try:
        with trio.fail_after(timeout):
            await until(lambda: ready() or proc.poll() is not None, timeout=timeout, what="the script")
            if sig is not None:
                proc.send_signal(sig)
            code = await proc.wait()
    finally:
        if proc.returncode is None:  # pragma: no cover - only when the test fails
            proc.kill()
            await proc.wait()
    return code, out.read_text() + err.read_text()


async def test_handle_signals_and_reap_orphans_on_the_main_thread(tmp_path: Path, kids: Children) -> None:
    """A program with handle_signals=True and reap_orphans=True gets SIGTERM: graceful shutdown,
    orphans adopted and reaped, handlers restored after the block."""
    orphan_file = tmp_path / "orphan.pid"
    script = _script(
        tmp_path,
        f"""
        import ctypes, os, signal, sys, time
        import trio, trinit

        child, record = sys.argv[1], sys.argv[2]
        PY = sys.executable

        def spec(name, **keys):
            return trinit.ProcessSpec(
                name=name, command=[PY, child, name, record, "term_delay=0.2"],
                ready={{"log": "^ready$", "interval": 0.01}}, output="null", **keys)

        def subreaper():
            libc = ctypes.CDLL(None, use_errno=True)
            value = ctypes.c_int(-1)
            libc.prctl(37, ctypes.byref(value), 0, 0, 0)
            return value.value

        # A oneshot leaves an orphan behind: a grandchild that outlives its parent.
        leaver = (
            "import subprocess, sys\\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\\n"
            "open(sys.argv[1], 'w').write(str(p.pid))\\n"
        )
        config = trinit.Config(
            processes=[
                spec("cache"),
                spec("app", main=True, after=["cache"]),
                trinit.ProcessSpec(name="leaver", command=[PY, "-c", leaver, {str(orphan_file)!r}],
                                   oneshot=True),
            ],
            shutdown_timeout=20,
        )

        async def main():
            before = signal.getsignal(signal.SIGTERM)
            async with trinit.open_supervisor(config, handle_signals=True, reap_orphans=True) as sup:
                await sup.wait_ready("app")
                while sup.status()["leaver"].state != "exited":
                    await trio.sleep(0.01)
                orphan = int(open({str(orphan_file)!r}).read())
                with open(f"/proc/{{orphan}}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                print("subreaper", subreaper(), "orphan_parent_is_me", ppid == os.getpid(), flush=True)
                print("handler_installed", signal.getsignal(signal.SIGTERM) is not before, flush=True)
                print("READY", flush=True)
                code = await sup.wait()
                print("code", code, flush=True)
            print("handler_restored", signal.getsignal(signal.SIGTERM) == before, flush=True)
            try:
                os.kill(orphan, 0)
                print("orphan alive", flush=True)
            except ProcessLookupError:
                print("orphan gone", flush=True)
            return code

        sys.exit(trio.run(main))
        """,
    )
    code, output = await _run_script(
        script, kids, ready=lambda: "READY" in script.with_suffix(".out").read_text(), sig=TERM
    )
    lines = [line for line in output.splitlines() if not line.startswith("trinit:")]
    assert "subreaper 1 orphan_parent_is_me True" in lines, output
    assert "handler_installed True" in lines, output
    assert "code 0" in lines, output
    assert "handler_restored True" in lines, output
    assert "orphan gone" in lines, output
    assert code == 0, output
    # SIGTERM began the shutdown: main first (with the signal that began it), then cache.
    assert kids.events(["TERM", "exit"]) == [
        ("app", "TERM"),
        ("app", "exit"),
        ("cache", "TERM"),
        ("cache", "exit"),
    ]
    assert_gone([pid for _, _, pid in kids.records()])


async def test_ctrl_c_in_a_plain_trio_program_stops_the_processes_gracefully(
    tmp_path: Path, kids: Children
) -> None:
    """Library mode leaves Ctrl-C to trio: KeyboardInterrupt leaves the block, which shuts down."""
    script = _script(
        tmp_path,
        """
        import sys
        import trio, trinit

        child, record = sys.argv[1], sys.argv[2]

        def spec(name, **keys):
            return trinit.ProcessSpec(
                name=name, command=[sys.executable, child, name, record, "term_delay=0.2"],
                ready={"log": "^ready$", "interval": 0.01}, output="null", **keys)

        config = trinit.Config(processes=[spec("db"), spec("app", after=["db"])], shutdown_timeout=20)

        async def main():
            async with trinit.open_supervisor(config) as sup:
                await sup.wait_ready("app")
                print("READY", flush=True)
                await trio.sleep_forever()

        def leaves(exc):
            if isinstance(exc, BaseExceptionGroup):
                return [name for e in exc.exceptions for name in leaves(e)]
            return [type(exc).__name__]

        try:
            trio.run(main)
        except BaseException as exc:  # (a group until the library unwraps it: see above)
            print("raised", *leaves(exc), flush=True)
            sys.exit(9)
        """,
    )
    code, output = await _run_script(
        script, kids, ready=lambda: "READY" in script.with_suffix(".out").read_text(), sig=INT
    )
    assert code == 9, output
    assert "raised KeyboardInterrupt" in output, output
    assert kids.events(["TERM", "exit", "INT"]) == [
        ("app", "TERM"),
        ("app", "exit"),
        ("db", "TERM"),
        ("db", "exit"),
    ], output
    assert_gone([pid for _, _, pid in kids.records()])


# ================================================================================ trinit.run


RUN_SCRIPT = """
import sys
import trinit

child, record = sys.argv[1], sys.argv[2]
PY = sys.executable

def spec(name, *opts, **keys):
    return trinit.ProcessSpec(
        name=name, command=[PY, child, name, record, "term_delay=0.2", *opts],
        ready={{"log": "^ready$", "interval": 0.01}}, output="null", **keys)

config = trinit.Config(processes=[spec("side"), {main}], shutdown_timeout=20)
code = trinit.run(config)
print("run returned", code, flush=True)
sys.exit(code)
"""


async def test_run_returns_the_main_process_exit_code(tmp_path: Path, kids: Children) -> None:
    main = 'trinit.ProcessSpec(name="app", command=[PY, "-c", "import time; time.sleep(0.5); raise SystemExit(5)"], main=True, after=["side"])'
    script = _script(tmp_path, RUN_SCRIPT.format(main=main))
    code, output = await _run_script(script, kids, ready=lambda: False, sig=None)
    assert code == 5, output
    assert "run returned 5" in output
    assert kids.events(["TERM", "exit"]) == [("side", "TERM"), ("side", "exit")]
    assert_gone([pid for _, _, pid in kids.records()])


@pytest.mark.parametrize("sig", [TERM, INT])
async def test_run_handles_signals_like_the_cli(tmp_path: Path, kids: Children, sig: int) -> None:
    """SIGTERM/SIGINT to a program in ``trinit.run``: graceful shutdown, main first and with the
    signal that began it; run() returns (the main exited 0 from its handler)."""
    main = 'spec("app", main=True, after=["side"])'
    script = _script(tmp_path, RUN_SCRIPT.format(main=main))
    code, output = await _run_script(script, kids, ready=lambda: kids.got("app", "start"), sig=sig)
    name = signal.Signals(sig).name[3:]
    assert kids.events([name, "TERM", "exit"]) == [
        ("app", name),
        ("app", "exit"),
        ("side", "TERM"),
        ("side", "exit"),
    ], output
    assert code == 0, output
    assert "run returned 0" in output
    assert_gone([pid for _, _, pid in kids.records()])


# ================================================================================ logic, on the fake


def _fake_config() -> Config:
    return Config(
        processes=[
            ProcessSpec(name="db", command="db"),
            ProcessSpec(name="cache", command="cache", after=["db"], restart="always"),
            ProcessSpec(name="app", command="app", after=["cache"]),
        ],
        shutdown_timeout=30,
    )


def _graceful(delay: float) -> Behaviour:
    return Behaviour.forever(on_signal={TERM: Exit(code=0, delay=delay)})


async def test_fake_stop_one_process_while_others_run(autojump_clock: MockClock) -> None:
    config = _fake_config()
    fake = FakeOS({"db": _graceful(1), "cache": _graceful(2), "app": _graceful(3)}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.wait_ready("app")
        t0 = trio.current_time()
        await sup.stop("cache")
        assert trio.current_time() - t0 == pytest.approx(2)  # returns once it has exited
        assert [(s.time - t0, s.signal) for s in fake.signals_to("cache")] == [(0, TERM)]
        assert fake.signals_to("app") == [] and fake.signals_to("db") == []
        await trio.sleep(100)  # restart = "always" does not bring a stopped process back
        assert len(fake.spawns_of("cache")) == 1
        st = sup.status()
        assert st["cache"].state == "exited" and st["cache"].pid is None
        assert st["cache"].last_exit == trinit.ExitStatus(code=0)
        assert st["app"].state == "ready" and st["db"].state == "ready"
        t1 = trio.current_time()
        sup.request_shutdown("test")
        assert await sup.wait() == 0
    # the rest stop in reverse order; cache is not stopped twice
    assert [(s.name, s.time - t1) for s in fake.signals if s.signal == TERM][1:] == [("app", 0), ("db", 3)]


async def test_fake_stop_of_a_process_that_has_not_started(autojump_clock: MockClock) -> None:
    """stop() of a process still waiting for its dependencies: it never starts, and its status
    no longer says "waiting" (it is final: wait_ready raises)."""
    config = Config(
        processes=[
            ProcessSpec(name="db", command="db", ready={"exec": ["probe"], "interval": 1}),
            ProcessSpec(name="app", command="app", after=["db"]),
        ]
    )
    fake = FakeOS(
        {"db": Behaviour.forever(), "probe": [Behaviour.exits(1)] * 3 + [Behaviour.exits(0)]}, config=config
    )
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(0.5)
        assert sup.status()["app"].state == "waiting"
        await sup.stop("app")
        await sup.wait_ready("db")
        await trio.sleep(10)
        assert fake.spawns_of("app") == []
        with pytest.raises(trinit.TrinitError):
            await sup.wait_ready("app")
        assert sup.status()["app"].state in ("exited", "skipped"), sup.status()["app"]
        sup.request_shutdown("test")


async def test_fake_stop_during_a_restart_delay(autojump_clock: MockClock) -> None:
    config = Config(
        processes=[
            ProcessSpec(name="flaky", command="flaky", restart="on-failure", restart_delay=5),
            ProcessSpec(name="other", command="other"),
        ]
    )
    fake = FakeOS({"flaky": Behaviour.exits(1, after=1), "other": Behaviour.forever()}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(2)  # flaky exited at 1 and waits until 6 to restart
        assert sup.status()["flaky"].restarts == 1 and sup.status()["flaky"].pid is None
        await sup.stop("flaky")
        await trio.sleep(30)
        assert len(fake.spawns_of("flaky")) == 1
        st = sup.status()["flaky"]
        assert st.state == "exited" and st.last_exit == trinit.ExitStatus(code=1)
        assert sup.status()["other"].state == "ready"
        sup.request_shutdown("test")
        assert await sup.wait() == 0


async def test_fake_stop_kills_after_stop_timeout(autojump_clock: MockClock) -> None:
    config = Config(processes=[ProcessSpec(name="stub", command="stub", stop_timeout=4)])
    fake = FakeOS({"stub": Behaviour.stubborn()}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.wait_ready("stub")
        t0 = trio.current_time()
        await sup.stop("stub")
        assert [(s.time - t0, s.signal) for s in fake.signals_to("stub")] == [(0, TERM), (4, KILL)]
        assert sup.status()["stub"].last_exit == trinit.ExitStatus(signal=KILL)
        assert await sup.wait() == 0  # nothing left: the run ends by itself


async def test_fake_restart(autojump_clock: MockClock) -> None:
    config = _fake_config()
    fake = FakeOS({"db": _graceful(0), "cache": _graceful(1), "app": _graceful(0)}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.wait_ready("app")
        old = sup.status()["cache"].pid
        t0 = trio.current_time()
        await sup.restart("cache")
        await sup.wait_ready("cache")
        st = sup.status()["cache"]
        assert st.pid != old and st.restarts == 1 and st.state == "ready"
        # stopped with its stop signal, started again at once (no restart delay on request)
        assert fake.start_times("cache")[-1] - t0 == pytest.approx(1)
        assert len(fake.spawns_of("app")) == 1 and fake.signals_to("app") == []
        sup.request_shutdown("test")
        await sup.wait()


async def test_fake_status_states(autojump_clock: MockClock) -> None:
    config = Config(
        processes=[
            ProcessSpec(name="web", command="web", ready={"exec": ["probe"], "interval": 1}),
            ProcessSpec(name="worker", command="worker", after={"web": "ready"}, stop_timeout=5),
            ProcessSpec(name="bad", command="bad", ready={"exec": ["badprobe"]}, on_failure="ignore"),
            ProcessSpec(name="never", command="never", after={"bad": "ready"}, on_failure="ignore"),
        ],
        shutdown_timeout=30,
    )
    fake = FakeOS(
        {
            "web": Behaviour.forever(),
            "probe": [
                Behaviour.exits(1, after=0.5),
                Behaviour.exits(1, after=0.5),
                Behaviour.exits(0, after=0.5),
            ],
            "worker": Behaviour.stubborn(),
            "bad": Behaviour.exits(2, after=1),
            "badprobe": Behaviour.exits(1, after=0.1),
        },
        config=config,
    )
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(0.1)
        st = sup.status()
        assert st["web"].state == "running"  # started, probe not passed yet
        assert st["worker"].state == "waiting"
        assert st["bad"].state == "running"
        await sup.wait_ready("web")
        await sup.wait_ready("worker")
        await trio.sleep(5)
        st = sup.status()
        assert st["web"].state == "ready" and st["worker"].state == "ready"
        assert st["bad"].state == "failed" and st["bad"].last_exit == trinit.ExitStatus(code=2)
        assert st["never"].state == "skipped" and st["never"].pid is None
        seen: list[str] = []
        nursery.start_soon(sup.stop, "worker")
        await trio.sleep(1)
        seen.append(sup.status()["worker"].state)
        await trio.sleep(10)
        seen.append(sup.status()["worker"].state)
        assert seen == ["stopping", "exited"]
        sup.request_shutdown("test")


async def test_fake_wait_returns_the_main_exit_code_after_the_shutdown(autojump_clock: MockClock) -> None:
    config = Config(
        processes=[
            ProcessSpec(name="side", command="side"),
            ProcessSpec(name="app", command="app", main=True, after=["side"]),
        ]
    )
    fake = FakeOS({"side": _graceful(2), "app": Behaviour.exits(3, after=10)}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert await sup.wait() == 3
        assert trio.current_time() == pytest.approx(12)  # the main's exit, then side's 2 s stop
        assert sup.status()["side"].state == "exited"


# ================================================================================ validation


def test_process_spec_reports_every_problem() -> None:
    with pytest.raises(trinit.ConfigError) as info:
        ProcessSpec(name="x", command="sleep 1", stop_timeout="soon", restart="sometimes")
    errors = info.value.errors
    assert len(errors) == 2, errors
    assert any("stop_timeout" in e and "soon" in e for e in errors), errors
    assert any("restart" in e and "sometimes" in e for e in errors), errors
    assert all('"x"' in e for e in errors), errors
    assert isinstance(info.value, trinit.TrinitError)
    assert str(info.value) == "\n".join(errors)


def test_config_reports_every_problem() -> None:
    with pytest.raises(trinit.ConfigError) as info:
        Config(
            processes=[
                ProcessSpec(name="a", command="a", after=["nope"]),
                ProcessSpec(name="b", command="b", main=True),
                ProcessSpec(name="c", command="c", main=True),
            ],
            shutdown_timeout="never",
        )
    text = "\n".join(info.value.errors)
    assert len(info.value.errors) >= 3, text
    assert "nope" in text and "shutdown_timeout" in text and "main" in text


def test_load_config_raises_the_same(tmp_path: Path) -> None:
    path = tmp_path / "trinit.toml"
    path.write_text('[process.x]\ncommand = "sleep 1"\nstop_timeout = "soon"\nrestart = "sometimes"\n')
    with pytest.raises(trinit.ConfigError) as info:
        trinit.load_config(path)
    errors = info.value.errors
    assert len(errors) == 2, errors
    assert all(str(path) in e and '"x"' in e for e in errors), errors
    assert any("stop_timeout" in e for e in errors) and any("restart" in e for e in errors)

    path.write_text('[process.x]\ncommand = "sleep 1"\nstop_timeout = "2s"\n')
    config = trinit.load_config(path)
    assert isinstance(config, Config) and config.process("x").stop_timeout == 2.0


# ================================================================================ examples/loadgen


LOADGEN = REPO / "examples" / "loadgen" / "loadgen.py"


async def _loadgen(tmp_path: Path, *args: str, sig: int | None) -> tuple[int, str, Path]:
    results = tmp_path / "results"
    out, err = tmp_path / "loadgen.out", tmp_path / "loadgen.err"
    with out.open("wb") as f, err.open("wb") as g:  # separate: trinit's log must not split its lines
        proc = await trio.lowlevel.open_process(
            [PY, str(LOADGEN), *args, "--out", str(results)], stdout=f, stderr=g
        )
    try:
        with trio.fail_after(60):
            if sig is not None:
                await until(
                    lambda: "workers running" in out.read_text() or proc.poll() is not None,
                    timeout=30,
                    what="loadgen to start its workers",
                )
                await trio.sleep(0.5)  # let the workers do some work
                proc.send_signal(sig)
            code = await proc.wait()
    finally:
        if proc.returncode is None:  # pragma: no cover - only when the test fails
            proc.kill()
            await proc.wait()
    return code, out.read_text() + err.read_text(), results


def _check_results(results: Path, workers: int, output: str) -> None:
    import json

    files = sorted(results.glob("worker-*.json"))
    assert [f.name for f in files] == [f"worker-{i}.json" for i in range(workers)], output
    for f in files:
        data = json.loads(f.read_text())
        assert data["iterations"] > 0 and data["signal"] == "SIGTERM", data
        assert not alive(data["pid"])
    assert f"{workers}/{workers} workers wrote their results" in output, output
    assert "total" in output, output


async def test_loadgen_ctrl_c_lets_every_worker_write_its_results(tmp_path: Path) -> None:
    code, output, results = await _loadgen(tmp_path, "--workers", "3", sig=INT)
    assert code == 0, output
    _check_results(results, 3, output)


async def test_loadgen_stops_after_its_seconds(tmp_path: Path) -> None:
    code, output, results = await _loadgen(tmp_path, "--workers", "2", "--seconds", "1", sig=None)
    assert code == 0, output
    _check_results(results, 2, output)
