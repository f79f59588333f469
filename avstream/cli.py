"""The ``avstream`` command: thin typer commands, one module each under avstream/commands/,
registered here by name (``register``), so the list of commands is read in one place.

User mistakes arrive here as AvstreamError and leave as one line on stderr plus the error's
documented exit code (see avstream/errors.py); anything else is a bug and keeps its traceback.
Top-level options: ``--version``, ``--log-level LEVEL`` and ``-v``/``-vv`` set the level of the
library's named loggers (default WARNING).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, Final

import typer

from avstream import __version__
from avstream.errors import AvstreamError

LOG_FORMAT: Final[str] = "%(levelname)s %(name)s: %(message)s"
LOG_LEVELS: Final[tuple[str, ...]] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LOG_LEVEL: Final[str] = "WARNING"
VERBOSE_LEVELS: Final[tuple[str, ...]] = ("WARNING", "INFO", "DEBUG")
"""Level for no ``-v``, ``-v``, ``-vv`` (more v's stay at DEBUG)."""

app = typer.Typer(
    name="avstream",
    help="Real-time audio-visual scene classifier (TAU Urban AV 2021 scenes) on ONNX Runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def log_level(option: str | None, verbose: int) -> int:
    """The level ``--log-level`` / ``-v`` ask for; AvstreamError (exit 2) names a bad value or
    the two options given together."""
    if option is not None and verbose:
        raise AvstreamError(f"--log-level {option} and -v were both given; expected one of them")
    if option is None:
        return logging.getLevelName(VERBOSE_LEVELS[min(verbose, len(VERBOSE_LEVELS) - 1)])
    name = option.strip().upper()
    if name not in LOG_LEVELS:
        raise AvstreamError(
            f"--log-level {option!r} is not a log level; expected one of {', '.join(LOG_LEVELS)}")
    return logging.getLevelName(name)


def _print_version(asked: bool) -> None:
    if asked:
        print(f"avstream {__version__}")
        raise typer.Exit()


@app.callback()
def top_level(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the package version and exit."),
    level: str | None = typer.Option(
        None, "--log-level", metavar="LEVEL",
        help=f"Log level of the library's messages on stderr: {', '.join(LOG_LEVELS)} "
             f"(default {DEFAULT_LOG_LEVEL})."),
    verbose: int = typer.Option(0, "-v", "--verbose", count=True,
                                help="More messages: -v is INFO, -vv DEBUG."),
) -> None:
    """Real-time audio-visual scene classifier (TAU Urban AV 2021 scenes) on ONNX Runtime."""
    logging.getLogger().setLevel(log_level(level, verbose))


def _commands() -> dict[str, Callable[..., Any]]:
    """Every command, by name. A module that is missing or broken fails here (exit 1 with its
    traceback), never as a command that quietly disappears from ``--help``."""
    from avstream.commands import batch, demo, devices, history, info, live, record, replay, serve

    return {
        "info": info.info,
        "replay": replay.replay,
        "live": live.live,
        "devices": devices.devices,
        "demo": demo.demo,
        "batch": batch.batch,
        "serve": serve.serve,
        "history": history.history,
        "record": record.record,
    }


def register() -> None:
    """Add every command to ``app`` (once; a second call changes nothing)."""
    known = {c.name for c in app.registered_commands}
    for name, command in _commands().items():
        if name not in known:
            app.command(name)(command)


def bare_option(argv: list[str], option: str, value: str) -> list[str]:
    """``option`` given with no value (last, or before another option) -> ``option=value``:
    typer options take a value, and ``--ray`` alone means a local Ray instance."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == option and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out[i] = f"{option}={value}"
    return out


def main() -> None:
    from avstream.cluster import LOCAL

    logging.basicConfig(level=DEFAULT_LOG_LEVEL, format=LOG_FORMAT)
    register()
    sys.argv = bare_option(sys.argv, "--ray", LOCAL)
    try:
        app()
    except AvstreamError as e:
        print(f"avstream: error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None


if __name__ == "__main__":
    main()
