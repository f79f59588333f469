"""The ``avstream`` command: thin typer commands, one module each under avstream/commands/.

User mistakes arrive here as AvstreamError and leave as one line on stderr plus the error's
documented exit code (see avstream/errors.py); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from avstream.errors import AvstreamError

app = typer.Typer(
    name="avstream",
    help="Real-time audio-visual scene classifier (TAU Urban AV 2021 scenes) on ONNX Runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


COMMANDS: tuple[str, ...] = ("info", "replay", "live", "devices", "demo", "batch", "serve")
"""Modules of avstream/commands/ that register a command on ``app`` when imported."""


def _register() -> None:
    """Import every command module; one that is missing or broken is an internal error (exit 1
    with its traceback), never a command that quietly disappears from ``--help``."""
    import importlib

    for name in COMMANDS:
        importlib.import_module(f"avstream.commands.{name}")


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

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register()
    sys.argv = bare_option(sys.argv, "--ray", LOCAL)
    try:
        app()
    except AvstreamError as e:
        print(f"avstream: error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None


if __name__ == "__main__":
    main()
