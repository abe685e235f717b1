"""The library's process-wide options (SPEC §7): by default nothing process-wide is touched;
``handle_signals``/``reap_orphans`` and ``trinit.run`` do what the CLI does, on the main thread."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import pytest
import trio
from library_kids import (
    HUP,
    INT,
    KILL,
    PY,
    TERM,
    Children,
    alive,
    assert_gone,
    handlers,
    kids_fixture,
    live_pids,
    run_script,
    subreaper,
    until,
    write_script,
)

import trinit
from trinit import Config, ProcessSpec

kids = kids_fixture()


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


async def test_handle_signals_and_reap_orphans_on_the_main_thread(tmp_path: Path, kids: Children) -> None:
    """A program with handle_signals=True and reap_orphans=True gets SIGTERM: graceful shutdown,
    orphans adopted and reaped, handlers restored after the block."""
    orphan_file = tmp_path / "orphan.pid"
    script = write_script(
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
    code, output = await run_script(
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
    script = write_script(
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
    code, output = await run_script(
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
    script = write_script(tmp_path, RUN_SCRIPT.format(main=main))
    code, output = await run_script(script, kids, ready=lambda: False, sig=None)
    assert code == 5, output
    assert "run returned 5" in output
    assert kids.events(["TERM", "exit"]) == [("side", "TERM"), ("side", "exit")]
    assert_gone([pid for _, _, pid in kids.records()])


@pytest.mark.parametrize("sig", [TERM, INT])
async def test_run_handles_signals_like_the_cli(tmp_path: Path, kids: Children, sig: int) -> None:
    """SIGTERM/SIGINT to a program in ``trinit.run``: graceful shutdown, main first and with the
    signal that began it; run() returns (the main exited 0 from its handler)."""
    main = 'spec("app", main=True, after=["side"])'
    script = write_script(tmp_path, RUN_SCRIPT.format(main=main))
    code, output = await run_script(script, kids, ready=lambda: kids.got("app", "start"), sig=sig)
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
