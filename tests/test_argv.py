"""The command line: every option in every spelling, its errors, and the precedence
command line > environment > ``[trinit]`` (the config file) > default."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from trinit.boot.argv import Options, UsageError, help_text, parse_args
from trinit.boot.overrides import apply_cli, load_for_cli
from trinit.config.defaults import LOG_FORMAT, SHUTDOWN_TIMEOUT, STOP_TIMEOUT
from trinit.config.model import Config, ProcessSpec

# A config whose values all differ from the defaults and from what the tests pass.
CONFIG = """\
[trinit]
shutdown_timeout = 20
log_format = "json"

[process.app]
command = ["app", "--serve"]
main = true
stop_timeout = 7

[process.side]
command = ["side"]
"""


def parse(*argv: str, **environ: str) -> Options:
    return parse_args(list(argv), environ)


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "trinit.toml"
    path.write_text(CONFIG)
    return str(path)


def main_of(config: Config) -> ProcessSpec:
    main = config.main_process()
    assert main is not None
    return main


# ------------------------------------------------------------------------------- spellings


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "f.toml"],
        ["-cf.toml"],
        ["--config", "f.toml"],
        ["--config=f.toml"],
    ],
)
def test_config_spellings(argv: list[str]) -> None:
    assert parse(*argv).config == "f.toml"


@pytest.mark.parametrize(
    ("argv", "seconds"),
    [
        (["-t", "5"], 5.0),
        (["-t5"], 5.0),
        (["-t", "500ms"], 0.5),
        (["--stop-timeout", "2s"], 2.0),
        (["--stop-timeout=5"], 5.0),
        (["-gt", "3"], 3.0),
        (["-gt3"], 3.0),
    ],
)
def test_stop_timeout_spellings(argv: list[str], seconds: float) -> None:
    assert parse(*argv, "cmd").stop_timeout == seconds


@pytest.mark.parametrize("argv", [["--shutdown-timeout", "1m"], ["--shutdown-timeout=1m"]])
def test_shutdown_timeout_spellings(argv: list[str]) -> None:
    assert parse(*argv).shutdown_timeout == 60.0


@pytest.mark.parametrize("argv", [["-g"], ["--process-group"], ["-gs"], ["-sg"], ["-vg"], ["-g", "-s"]])
def test_process_group_spellings(argv: list[str]) -> None:
    assert parse(*argv).process_group is True


@pytest.mark.parametrize("argv", [["-s"], ["--subreaper"], ["-gs"]])
def test_subreaper_spellings(argv: list[str]) -> None:
    assert parse(*argv).subreaper is True


@pytest.mark.parametrize(
    ("argv", "sig"),
    [
        (["-p", "TERM"], signal.SIGTERM),
        (["-pKILL"], signal.SIGKILL),
        (["--pdeathsig", "sigusr1"], signal.SIGUSR1),
        (["--pdeathsig=15"], signal.SIGTERM),
        (["-gp", "HUP"], signal.SIGHUP),
    ],
)
def test_pdeathsig_spellings(argv: list[str], sig: int) -> None:
    assert parse(*argv).pdeathsig == sig


def test_success_exit_repeats() -> None:
    assert parse("-e", "143", "-e1", "--success-exit", "0", "--success-exit=255").success_exits == {
        143,
        1,
        0,
        255,
    }


def test_rewrite_repeats_with_names_numbers_and_zero() -> None:
    opts = parse("-r", "TERM:QUIT", "-rUSR1:0", "--rewrite", "2:15", "--rewrite=SIGHUP:sigint")
    assert opts.rewrite == {
        signal.SIGTERM: signal.SIGQUIT,
        signal.SIGUSR1: 0,
        signal.SIGINT: signal.SIGTERM,
        signal.SIGHUP: signal.SIGINT,
    }


@pytest.mark.parametrize(
    ("argv", "verbosity"),
    [
        ([], None),
        (["-v"], 1),
        (["-vv"], 2),
        (["-v", "-v"], 2),
        (["--verbose"], 1),
        (["-q"], -1),
        (["--quiet", "-q"], -2),
        (["-vq"], 0),
        (["-gvv"], 2),
    ],
)
def test_verbosity_spellings(argv: list[str], verbosity: int | None) -> None:
    assert parse(*argv).verbosity == verbosity


@pytest.mark.parametrize("argv", [["--log-format", "json"], ["--log-format=json"]])
def test_log_format_spellings(argv: list[str]) -> None:
    assert parse(*argv).log_format == "json"


@pytest.mark.parametrize(
    ("argv", "what"), [(["-h"], "help"), (["--help"], "help"), (["--version"], "version")]
)
def test_help_and_version(argv: list[str], what: str) -> None:
    assert getattr(parse(*argv), what) is True


def test_nothing_given_leaves_everything_unset() -> None:
    opts = parse()
    assert (opts.config, opts.stop_timeout, opts.shutdown_timeout, opts.verbosity, opts.log_format) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert (opts.process_group, opts.subreaper, opts.pdeathsig, opts.command) == (False, False, None, [])
    assert (opts.success_exits, opts.rewrite, opts.help, opts.version) == (set(), {}, False, False)


def test_help_quotes_the_defaults() -> None:
    assert f"(default {STOP_TIMEOUT:g})" in help_text()
    assert f"(default {SHUTDOWN_TIMEOUT:g}," in help_text()
    assert f"(default {LOG_FORMAT})" in help_text()


# ------------------------------------------------------------------------------- the command


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["--", "app", "-v"], ["app", "-v"]),
        (["app", "-v"], ["app", "-v"]),
        (["-g", "app", "-t", "5"], ["app", "-t", "5"]),  # options after the command are its own
        (["-g", "--", "-app", "--", "x"], ["-app", "--", "x"]),  # only the first -- is ours
        (["-", "x"], ["-", "x"]),
        (["--"], []),
        (["-t", "5", "--", "--help"], ["--help"]),
    ],
)
def test_the_command_starts_at_the_first_non_option_or_after_double_dash(
    argv: list[str], command: list[str]
) -> None:
    opts = parse(*argv)
    assert opts.command == command
    assert opts.help is False


def test_an_option_value_may_look_like_an_option() -> None:
    opts = parse("-c", "--", "app")
    assert (opts.config, opts.command) == ("--", ["app"])


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-x"], "unknown option '-x'"),
        (["--nope"], "unknown option '--nope'"),
        (["-gx"], "unknown option '-x'"),
        (["--verbose=2"], "option --verbose takes no value"),
        (["--help=yes"], "option --help takes no value"),
        (["-t", "soon"], 'option -t: invalid value \'soon\' (a duration like 5, 0.5, "500ms" or "2s")'),
        (["--stop-timeout=-1"], "option --stop-timeout: invalid value '-1'"),
        (["--shutdown-timeout", "x"], "option --shutdown-timeout: invalid value 'x'"),
        (["-p", "NOPE"], "option -p: invalid value 'NOPE' (a signal name or number like TERM or 15)"),
        (["-e", "256"], "option -e: invalid value '256' (an exit code from 0 to 255)"),
        (["-e", "x"], "option -e: invalid value 'x'"),
        (["-r", "TERM"], "option -r: invalid value 'TERM' (FROM:TO with signal names or numbers"),
        (["-r", "TERM:NOPE"], "option -r: invalid value 'TERM:NOPE'"),
        (["--log-format", "xml"], "option --log-format: invalid value 'xml' (text or json)"),
        (["-c", ""], "option -c: the config path is empty"),
        (["--config="], "option --config: the config path is empty"),
        (["-r", "KILL:TERM"], "option -r: SIGKILL cannot be caught, so it cannot be rewritten"),
        (["-r", "sigstop:0"], "option -r: SIGSTOP cannot be caught, so it cannot be rewritten"),
        (["-r", "9:15"], "option -r: SIGKILL cannot be caught"),
        (
            ["-r", "CHLD:HUP"],
            "option -r: SIGCHLD tells trinit that a child exited, so it cannot be rewritten",
        ),
    ],
)
def test_usage_errors_are_one_line(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(*argv, "app")
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-c"], "option -c needs a value"),
        (["--config"], "option --config needs a value"),
        (["-g", "-t"], "option -t needs a value"),
        (["-gt"], "option -t needs a value"),
    ],
)
def test_a_missing_value_is_a_one_line_usage_error(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=f"^{message}$"):
        parse(*argv)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TRINIT_SHUTDOWN_TIMEOUT": "never"}, "TRINIT_SHUTDOWN_TIMEOUT: invalid value 'never'"),
        (
            {"TRINIT_VERBOSITY": "loud"},
            "TRINIT_VERBOSITY: invalid value 'loud' (a whole number like 1 or -1)",
        ),
    ],
)
def test_bad_environment_values_are_one_line_usage_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse("app", **environ)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_command_line_value_hides_a_bad_environment_value() -> None:
    opts = parse(
        "--shutdown-timeout", "3", "-v", "app", TRINIT_SHUTDOWN_TIMEOUT="never", TRINIT_VERBOSITY="x"
    )
    assert (opts.shutdown_timeout, opts.verbosity) == (3.0, 1)


# ------------------------------------------------------------------------------- precedence


def test_config_command_line_over_environment() -> None:
    assert parse("-c", "cli.toml", TRINIT_CONFIG="env.toml").config == "cli.toml"
    assert parse(TRINIT_CONFIG="env.toml").config == "env.toml"
    assert parse(TRINIT_CONFIG="").config is None


@pytest.mark.parametrize("var", ["TRINIT_KILL_PROCESS_GROUP", "TRINIT_SUBREAPER"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), (" Yes ", True), ("on", True), ("0", False), ("", False)],
)
def test_flag_environment_variables(var: str, value: str, expected: bool) -> None:
    what = "process_group" if var == "TRINIT_KILL_PROCESS_GROUP" else "subreaper"
    assert getattr(parse(**{var: value}), what) is expected
    flag = "-g" if what == "process_group" else "-s"
    assert getattr(parse(flag, **{var: value}), what) is True  # the command line wins


def test_verbosity_command_line_over_environment() -> None:
    assert parse(TRINIT_VERBOSITY="2").verbosity == 2
    assert parse("-q", TRINIT_VERBOSITY="2").verbosity == -1
    assert parse("-vq", TRINIT_VERBOSITY="2").verbosity == 0  # -vq was given: 0, not the env's 2


def test_shutdown_timeout_command_line_over_environment_over_file_over_default(config_file: str) -> None:
    def shutdown_timeout(*argv: str, **environ: str) -> float:
        return load_for_cli(parse(*argv, **environ)).shutdown_timeout

    assert shutdown_timeout("--shutdown-timeout", "3", "-c", config_file, TRINIT_SHUTDOWN_TIMEOUT="4") == 3.0
    assert shutdown_timeout("-c", config_file, TRINIT_SHUTDOWN_TIMEOUT="4") == 4.0
    assert shutdown_timeout("-c", config_file) == 20.0
    assert shutdown_timeout("app") == SHUTDOWN_TIMEOUT


def test_stop_timeout_command_line_over_file_over_default(config_file: str) -> None:
    assert main_of(load_for_cli(parse("-c", config_file, "-t", "2"))).stop_timeout == 2.0
    assert main_of(load_for_cli(parse("-t2", "-c", config_file))).stop_timeout == 2.0
    assert main_of(load_for_cli(parse("-c", config_file))).stop_timeout == 7.0
    assert main_of(load_for_cli(parse("-t", "2", "app"))).stop_timeout == 2.0
    assert main_of(load_for_cli(parse("app"))).stop_timeout == STOP_TIMEOUT


def test_stop_timeout_applies_to_the_main_process_only(config_file: str) -> None:
    config = load_for_cli(parse("-c", config_file, "-t", "2"))
    assert [(p.name, p.stop_timeout) for p in config.processes] == [("app", 2.0), ("side", STOP_TIMEOUT)]


def test_log_format_command_line_over_file_over_default(config_file: str) -> None:
    assert load_for_cli(parse("--log-format", "text", "-c", config_file)).log_format == "text"
    assert load_for_cli(parse("-c", config_file)).log_format == "json"
    assert load_for_cli(parse("--log-format=json", "app")).log_format == "json"
    assert load_for_cli(parse("app")).log_format == LOG_FORMAT


def test_process_group_command_line_or_environment_over_file(config_file: str) -> None:
    assert main_of(load_for_cli(parse("-c", config_file))).signal_group is False
    assert main_of(load_for_cli(parse("-g", "-c", config_file))).signal_group is True
    assert main_of(load_for_cli(parse("-c", config_file, TRINIT_KILL_PROCESS_GROUP="1"))).signal_group is True
    assert main_of(load_for_cli(parse("app"))).signal_group is False
    assert main_of(load_for_cli(parse("app", TRINIT_KILL_PROCESS_GROUP="yes"))).signal_group is True


def test_config_from_the_environment_is_loaded(config_file: str) -> None:
    config = load_for_cli(parse(TRINIT_CONFIG=config_file))
    assert main_of(config).name == "app"


def test_double_dash_command_replaces_the_files_main_command(config_file: str) -> None:
    config = load_for_cli(parse("-c", config_file, "-t", "1", "--", "other", "x"))
    main = main_of(config)
    assert (main.name, main.command, main.stop_timeout) == ("app", ("other", "x"), 1.0)


def test_zero_config_runs_the_command_as_main() -> None:
    config = load_for_cli(parse("-g", "--", "app", "-v"))
    assert [(p.name, p.command, p.main, p.signal_group) for p in config.processes] == [
        ("main", ("app", "-v"), True, True)
    ]


def test_apply_cli_without_options_changes_nothing() -> None:
    config = Config(processes=[ProcessSpec(name="app", command=["app"], main=True, stop_timeout=7)])
    assert apply_cli(config, parse("-c", "unused.toml")) == config


def test_help_says_what_v_and_q_do() -> None:
    """Issue 10 defect 19: the help said "-vv: debug" although -v already showed debug lines."""
    assert "-vv: debug" not in help_text()
    assert "warnings and errors only with a COMMAND" in help_text()
    assert "each -v adds a level (lifecycle, then\n                            debug)" in help_text()
