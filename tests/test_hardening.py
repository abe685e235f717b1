"""The hardening keys (SPEC §12) as config and as a spawn: parsing, the checks against what
trinit itself may grant (against a stated set of privileges), the helper chain a spawn
execs, and the runtime handing each spawn and exec probe its process's hardening.

What the kernel makes of it, read from the child, is in tests/pid1/test_hardening.py.
"""

from __future__ import annotations

import signal
from typing import Any

import attrs
import pytest
from fakeutil import stop_at
from trio.testing import MockClock

from trinit import Config, ConfigError, ProcessSpec
from trinit.config import hardening_keys
from trinit.config.hardening import Hardening
from trinit.config.load import config_from_mapping
from trinit.config.plan import make_plan
from trinit.config.render import render_plan
from trinit.system import harden
from trinit.system.environ import Credentials
from trinit.system.harden import CAP_NUMBERS, Privileges, wrap
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, run_supervisor

ALL_CAPS = (1 << len(CAP_NUMBERS)) - 1


def privileges(**changes: Any) -> Privileges:
    """A root trinit with every capability, nice 0, oom_score_adj 0, hard limits of 4096 (nofile 20000)."""
    hard: dict[str, int | None] = dict.fromkeys(harden.LIMITS, 4096)
    hard.update(nofile=20000, cpu=None, core=None)
    values: dict[str, Any] = {
        "euid": 0,
        "permitted": ALL_CAPS,
        "effective": ALL_CAPS,
        "bounding": ALL_CAPS,
        "last_cap": len(CAP_NUMBERS) - 1,
        "nice": 0,
        "nice_limit": 0,
        "oom_score_adj": 0,
        "nr_open": 1048576,
        "hard": hard,
    }
    return Privileges(**{**values, **changes})


def without(*caps: str) -> int:
    mask = ALL_CAPS
    for cap in caps:
        mask &= ~(1 << CAP_NUMBERS[cap])
    return mask


@pytest.fixture
def own(monkeypatch: pytest.MonkeyPatch) -> dict[str, Privileges]:
    """What the config checks believe trinit has: set ``own["now"]``."""
    state = {"now": privileges()}
    monkeypatch.setattr(hardening_keys, "own_privileges", lambda: state["now"])
    return state


def errors(**keys: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        ProcessSpec("web", ["app"], **keys)
    return info.value.errors


# ------------------------------------------------------------------------------ parsing


def test_values_are_normalized(own: dict[str, Privileges]) -> None:
    spec = ProcessSpec(
        "web",
        ["app"],
        umask="27",
        rlimits={"nofile": 1024, "nproc": [512, 1024], "core": "unlimited", "cpu": [10, "unlimited"]},
        no_new_privileges=True,
        capabilities=["cap_net_bind_service", "CAP_KILL", "chown"],
        oom_score_adj=500,
        nice=5,
    )
    assert spec.umask == "0027"
    assert spec.rlimits == (
        ("nofile", 1024, 1024),
        ("nproc", 512, 1024),
        ("core", None, None),
        ("cpu", 10, None),
    )
    assert spec.capabilities == ("NET_BIND_SERVICE", "KILL", "CHOWN")
    assert spec.hardening == Hardening(
        umask=0o027,
        rlimits=spec.rlimits,
        no_new_privileges=True,
        capabilities=spec.capabilities,
        oom_score_adj=500,
        nice=5,
    )
    # Normalized values are accepted again as they are (attrs.evolve, a rebuilt Config).
    assert attrs.evolve(spec) == spec
    assert Config([spec]).processes == (spec,)


def test_no_hardening_key_means_no_hardening(own: dict[str, Privileges]) -> None:
    assert ProcessSpec("web", ["app"]).hardening is None
    assert ProcessSpec("web", ["app"], nice=0).hardening == Hardening(nice=0)
    # An empty list is not the same as no key: a root process then keeps no capability at all.
    assert ProcessSpec("web", ["app"], capabilities=[]).hardening == Hardening(capabilities=())


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"umask": 22},
            'umask: must be an octal string like "027" (got 22; quote it: a number is not octal)',
        ),
        ({"umask": "0778"}, 'umask: must be an octal string from "000" to "777", like "027" (got \'0778\')'),
        ({"umask": "1777"}, "umask: must be an octal string"),
        ({"umask": ""}, "umask: must be an octal string"),
        ({"no_new_privileges": 1}, "no_new_privileges: must be true or false (got 1)"),
        ({"oom_score_adj": 1001}, "oom_score_adj: must be a whole number from -1000 to 1000 (got 1001)"),
        ({"oom_score_adj": True}, "oom_score_adj: must be a whole number from -1000 to 1000 (got true)"),
        ({"nice": -21}, "nice: must be a whole number from -20 to 19 (got -21)"),
        ({"nice": 1.5}, "nice: must be a whole number from -20 to 19 (got 1.5)"),
        ({"rlimits": 5}, "rlimits: must be a table like { nofile = 65536, nproc = [512, 1024] } (got 5)"),
        (
            {"rlimits": {"cores": 0}},
            'rlimits: unknown limit "cores" (did you mean "core"?); the limits are nofile,',
        ),
        ({"rlimits": {"rss": 0}}, 'rlimits: unknown limit "rss"; the limits are'),
        ({"rlimits": {"nofile": [2, 1]}}, "rlimits.nofile: the soft limit (2) is above the hard limit (1)"),
        ({"rlimits": {"nofile": ["unlimited", 1]}}, "rlimits.nofile: the soft limit (unlimited) is above"),
        ({"rlimits": {"nofile": [1, 2, 3]}}, "rlimits.nofile: must be [soft, hard]: two values"),
        (
            {"rlimits": {"core": -1}},
            'rlimits.core: must be a number from 0 to 9223372036854775807, "unlimited"',
        ),
        ({"rlimits": {"core": 2**63}}, "rlimits.core: must be a number from 0"),
        ({"rlimits": {"core": "1M"}}, "rlimits.core: must be a number from 0"),
        ({"rlimits": {"core": True}}, "rlimits.core: must be a number from 0"),
        ({"capabilities": "NET_ADMIN"}, 'capabilities: must be an array of names like ["NET_BIND_SERVICE"]'),
        ({"capabilities": ["NET_BIND"]}, 'capabilities: unknown capability "NET_BIND" (did you mean'),
        ({"capabilities": ["ALL"]}, 'capabilities: unknown capability "ALL"'),
        ({"capabilities": [10]}, "capabilities: item 1 must be a capability name (got 10)"),
        ({"capabilities": ["KILL", "cap_kill"]}, 'capabilities: names "KILL" twice'),
    ],
)
def test_bad_values(own: dict[str, Privileges], keys: dict[str, Any], message: str) -> None:
    got = errors(**keys)
    assert len(got) == 1 and got[0].startswith(f'process "web": {message}'), got


def test_every_problem_is_reported_at_once(own: dict[str, Privileges]) -> None:
    got = errors(
        rlimits={"nofile": [2, 1], "bogus": 1, "core": "x"},
        capabilities=["X", "Y"],
        nice=99,
        umask="9",
    )
    assert len(got) == 7, got


def test_the_toml_loader_takes_the_keys_too(own: dict[str, Privileges]) -> None:
    data = {
        "process": {
            "web": {
                "command": ["app"],
                "umask": "077",
                "rlimits": {"nofile": 65536 // 4, "nproc": [512, 1024]},
                "capabilities": ["NET_BIND_SERVICE"],
            }
        }
    }
    config = config_from_mapping(data, source="t.toml", base_dir="/cfg", environ={})
    web = config.process("web")
    assert (web.umask, web.rlimits, web.capabilities) == (
        "0077",
        (("nofile", 16384, 16384), ("nproc", 512, 1024)),
        ("NET_BIND_SERVICE",),
    )


# -------------------------------------------------------- what trinit itself may grant


def test_a_capability_trinit_lacks_is_refused(own: dict[str, Privileges]) -> None:
    own["now"] = privileges(permitted=without("NET_ADMIN"), bounding=without("SYS_TIME"))
    got = errors(user="0", capabilities=["NET_ADMIN", "SYS_TIME", "KILL"])
    assert got == [
        'process "web": capabilities: trinit does not have CAP_NET_ADMIN itself, so it cannot pass it on; '
        "grant it to the container (docker run --cap-add, or securityContext.capabilities.add) or remove it",
        'process "web": capabilities: trinit does not have CAP_SYS_TIME itself, so it cannot pass it on; '
        "grant it to the container (docker run --cap-add, or securityContext.capabilities.add) or remove it",
    ]


def test_a_capability_the_kernel_does_not_know_is_refused(own: dict[str, Privileges]) -> None:
    own["now"] = privileges(last_cap=37)
    assert errors(capabilities=["BPF"]) == [
        'process "web": capabilities: this kernel does not know CAP_BPF (it is newer); remove it'
    ]


def test_root_needs_setpcap_to_keep_only_the_listed_capabilities(own: dict[str, Privileges]) -> None:
    own["now"] = privileges(effective=without("SETPCAP"))
    assert errors(capabilities=["KILL"]) == [
        'process "web": capabilities: the process runs as root, and trinit lacks CAP_SETPCAP, which it '
        "needs to narrow root's capabilities to the list; set user to a non-root user, or give trinit "
        "CAP_SETPCAP"
    ]
    # A non-root user does not need it: the ambient set is exactly the list.
    assert ProcessSpec("web", ["app"], user="nobody", capabilities=["KILL"]).capabilities == ("KILL",)


def test_a_non_root_trinit_passes_on_only_what_it_has(own: dict[str, Privileges]) -> None:
    own["now"] = privileges(euid=1000, permitted=1 << CAP_NUMBERS["NET_BIND_SERVICE"], effective=0)
    assert ProcessSpec("web", ["app"], capabilities=["NET_BIND_SERVICE"]).capabilities == (
        "NET_BIND_SERVICE",
    )
    assert errors(capabilities=["KILL"])[0].startswith(
        'process "web": capabilities: trinit does not have CAP_KILL itself'
    )


def test_limits_above_trinits_own_need_cap_sys_resource(own: dict[str, Privileges]) -> None:
    limits: dict[str, Any] = {
        "nofile": [1024, 30000],
        "nproc": 4096,
        "core": "unlimited",
        "stack": "unlimited",
    }
    assert ProcessSpec("web", ["app"], rlimits=limits).rlimits  # root with CAP_SYS_RESOURCE may raise them
    own["now"] = privileges(effective=without("SYS_RESOURCE"))
    assert errors(rlimits=limits) == [
        'process "web": rlimits.nofile: 30000 is above trinit\'s own hard limit (20000), and trinit lacks '
        "CAP_SYS_RESOURCE to raise it; lower it, or raise the container's limit (docker run --ulimit)",
        'process "web": rlimits.stack: unlimited is above trinit\'s own hard limit (4096), and trinit '
        "lacks CAP_SYS_RESOURCE to raise it; lower it, or raise the container's limit (docker run --ulimit)",
    ]


def test_open_files_are_capped_by_the_kernel_even_for_root(own: dict[str, Privileges]) -> None:
    assert errors(rlimits={"nofile": "unlimited"}) == [
        'process "web": rlimits.nofile: the kernel allows at most 1048576 open files (fs.nr_open), '
        "not unlimited; lower it"
    ]
    assert errors(rlimits={"nofile": [10, 2000000]})[0].endswith("not 2000000; lower it")


def test_a_lower_nice_needs_cap_sys_nice_or_rlimit_nice(own: dict[str, Privileges]) -> None:
    own["now"] = privileges(nice=5, effective=without("SYS_NICE"))
    assert ProcessSpec("web", ["app"], nice=5).nice == 5
    assert ProcessSpec("web", ["app"], nice=19).nice == 19
    assert errors(nice=4) == [
        'process "web": nice: trinit runs at nice 5 without CAP_SYS_NICE, so it cannot start a process '
        "at the higher priority 4; use 5 or more, or give trinit CAP_SYS_NICE"
    ]
    own["now"] = privileges(nice=5, effective=without("SYS_NICE"), nice_limit=25)  # down to -5
    assert ProcessSpec("web", ["app"], nice=-5).nice == -5
    assert errors(nice=-6)[0].endswith("use -5 or more, or give trinit CAP_SYS_NICE")
    own["now"] = privileges(nice=5, effective=without("SYS_NICE"), nice_limit=None)
    assert ProcessSpec("web", ["app"], nice=-20).nice == -20


def test_a_lower_oom_score_adj_needs_cap_sys_resource(own: dict[str, Privileges]) -> None:
    own["now"] = privileges(oom_score_adj=-500, effective=without("SYS_RESOURCE"))
    assert ProcessSpec("web", ["app"], oom_score_adj=-500).oom_score_adj == -500
    assert ProcessSpec("web", ["app"], oom_score_adj=1000).oom_score_adj == 1000
    assert errors(oom_score_adj=-501) == [
        'process "web": oom_score_adj: trinit\'s own oom_score_adj is -500 and it lacks CAP_SYS_RESOURCE, '
        "so it cannot give a process the lower -501; use -500 or more, or give trinit CAP_SYS_RESOURCE"
    ]


def test_unknown_facts_check_nothing(own: dict[str, Privileges]) -> None:
    """Without /proc trinit cannot know its capabilities: it does not guess."""
    own["now"] = privileges(permitted=None, effective=None, bounding=None, last_cap=None, oom_score_adj=None)
    spec = ProcessSpec("web", ["app"], capabilities=["SYS_ADMIN"], oom_score_adj=-1000)
    assert spec.capabilities == ("SYS_ADMIN",)


def test_the_real_privileges_are_read() -> None:
    own = harden.own_privileges()
    assert own.euid >= 0 and -20 <= own.nice <= 19
    assert own.hard.keys() == harden.LIMITS.keys()
    assert own.last_cap is None or own.last_cap >= 36


# ------------------------------------------------------------------------ trinit check


def test_check_shows_the_hardening_and_warns_of_missing_helpers(
    own: dict[str, Privileges], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(
        [
            ProcessSpec(
                "web",
                ["app"],
                umask="027",
                rlimits={"nofile": 1024, "nproc": (10, 20)},
                capabilities=[],
                no_new_privileges=True,
                oom_score_adj=100,
                nice=3,
            ),
            ProcessSpec("plain", ["app"]),
        ]
    )
    text = render_plan(make_plan(config))
    assert (
        "[umask 0027; rlimits nofile 1024, nproc 10:20; capabilities none; no_new_privileges; "
        "oom_score_adj 100; nice 3]"
    ) in text
    assert "Warnings" not in text
    monkeypatch.setattr(hardening_keys, "find_tool", lambda tool: None if tool == "setpriv" else "/x")
    assert make_plan(config).warnings == (
        'process "web": capabilities: needs the program setpriv (from util-linux), which is not installed '
        "(looked in /usr/bin, /bin, /usr/sbin, /sbin); install util-linux, or remove capabilities; "
        "it will fail to start",
    )


# ------------------------------------------------------------------------ the exec chain


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every helper "installed" in /t, trinit at nice 0 and able to narrow the bounding set."""
    monkeypatch.setattr(harden, "find_tool", lambda name: f"/t/{name}")
    monkeypatch.setattr(harden, "_found", {})
    monkeypatch.setattr(harden, "_thread_nice", lambda: 0)
    monkeypatch.setattr(harden, "_can_narrow_bounding_set", lambda: True)


USER = Credentials(uid=1000, gid=1000, groups=(1000, 27), name="app", home="/home/app")


def test_umask_alone_needs_no_helper(tools: None) -> None:
    assert wrap("/bin/app", ["app", "-x"], USER, Hardening(umask=0o27)) == (
        "/bin/app",
        ["app", "-x"],
        USER,
        0o27,
    )


def test_the_full_chain_in_order(tools: None) -> None:
    h = Hardening(
        umask=0o77,
        rlimits=(("nofile", 10, 20), ("core", None, None)),
        no_new_privileges=True,
        capabilities=("NET_BIND_SERVICE", "KILL"),
        oom_score_adj=-5,
        nice=-3,
    )
    exe, argv, creds, umask = wrap("/bin/app", ["app", "-x"], USER, h)
    assert (exe, creds, umask) == ("/t/nice", None, 0o77)  # setpriv switches the user, not subprocess
    assert argv == [
        "/t/nice", "--adjustment=-3", "--",
        "/t/choom", "-n", "-5", "--",
        "/t/prlimit", "--nofile=10:20", "--core=unlimited:unlimited", "--",
        "/t/setpriv", "--regid=1000", "--reuid=1000", "--groups=1000,27",
        "--inh-caps=-all,+net_bind_service,+kill", "--ambient-caps=-all,+net_bind_service,+kill",
        "--bounding-set=-all,+net_bind_service,+kill", "--no-new-privs", "--",
        "/bin/app", "-x",
    ]  # fmt: skip


def test_limits_for_another_user_are_set_as_root_then_setpriv_switches(tools: None) -> None:
    _, argv, creds, _ = wrap("/bin/app", ["app"], USER, Hardening(rlimits=(("nproc", 5, 5),)))
    assert creds is None
    assert argv == [
        "/t/prlimit", "--nproc=5:5", "--",
        "/t/setpriv", "--regid=1000", "--reuid=1000", "--groups=1000,27",
        "--inh-caps=-all", "--ambient-caps=-all", "--",
        "/bin/app",
    ]  # fmt: skip
    # Without a user switch, no setpriv.
    assert wrap("/bin/app", ["app"], None, Hardening(rlimits=(("nproc", 5, 5),)))[1][:3] == [
        "/t/prlimit",
        "--nproc=5:5",
        "--",
    ]


def test_nice_is_absolute_and_costs_nothing_when_already_there(
    tools: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harden, "_thread_nice", lambda: 4)
    assert wrap("/bin/app", ["app"], None, Hardening(nice=4))[:2] == ("/bin/app", ["app"])
    assert wrap("/bin/app", ["app"], None, Hardening(nice=10))[1] == [
        "/t/nice",
        "--adjustment=6",
        "--",
        "/bin/app",
    ]


def test_capabilities_without_setpcap_leave_the_bounding_set(
    tools: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harden, "_can_narrow_bounding_set", lambda: False)
    argv = wrap("/bin/app", ["app"], None, Hardening(capabilities=()))[1]
    assert argv == ["/t/setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--", "/bin/app"]


def test_a_missing_helper_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harden, "find_tool", lambda name: None if name == "prlimit" else f"/t/{name}")
    monkeypatch.setattr(harden, "_found", {"prlimit": "/gone/prlimit"})  # found once, removed since
    with pytest.raises(
        harden.HardeningError, match=r"^rlimits: needs the program prlimit \(from util-linux\)"
    ):
        wrap("/bin/app", ["app"], None, Hardening(rlimits=(("core", 0, 0),)))


# ----------------------------------------------------------- the runtime hands it over


async def test_spawns_and_exec_probes_get_their_process_hardening(
    own: dict[str, Privileges], autojump_clock: MockClock
) -> None:
    web = ProcessSpec(
        "web", ["web"], umask="077", nice=3, ready={"exec": ["check"], "interval": 1}, stop_timeout=1
    )
    plain = ProcessSpec("plain", ["plain"])
    config = Config([web, plain])
    fake = FakeOS(
        {
            "check": [Behaviour.exits(1, after=0.1), Behaviour.exits(0, after=0.1)],
            "web": Behaviour.forever(on_signal={signal.SIGTERM: Exit(code=0)}),
            "plain": Behaviour.exits(0, after=5),
        },
        config=config,
    )
    await run_supervisor(config, fake, at=stop_at(10))
    want = Hardening(umask=0o77, nice=3)
    assert [s.hardening for s in fake.spawns_of("web")] == [want]
    assert [s.hardening for s in fake.spawns_of("check")] == [want, want]
    assert [s.hardening for s in fake.spawns_of("plain")] == [None]


async def test_a_missing_helper_is_a_start_failure_naming_the_key(
    own: dict[str, Privileges], autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config([ProcessSpec("web", ["web"], main=True, no_new_privileges=True)])
    fake = FakeOS(config=config)

    def spawn(*args: Any, **kwargs: Any) -> int:
        raise harden.HardeningError(harden.missing_tool_message("setpriv", "no_new_privileges"))

    monkeypatch.setattr(fake, "spawn", spawn)
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 1
    failed = [e.message for e in log.events if e.event == "failed"]
    assert failed[0].startswith("could not start: no_new_privileges: needs the program setpriv"), failed
