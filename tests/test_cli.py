"""The top-level ``avstream`` options, through the real command: ``--version``,
``--log-level``/``-v`` (the library's named loggers, default WARNING), and the command list."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from cli_run import avstream

import avstream as package
from avstream.errors import EXIT_USAGE

LOADER_LINE = "INFO avstream.bundle.loader: bundle "
"""What the bundle loader logs at INFO when it has verified a bundle."""


def test_version_prints_the_installed_package_version() -> None:
    done = avstream("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"avstream {importlib.metadata.version('avstream')}"
    assert package.__version__ == importlib.metadata.version("avstream")


@pytest.mark.parametrize(("options", "shown"), [
    ((), False),
    (("--log-level", "ERROR"), False),
    (("-v",), True),
    (("--log-level", "info"), True),
    (("-vv",), True),
])
def test_log_level_and_v_set_the_library_loggers(tiny_bundle: Path, options: tuple[str, ...],
                                                  shown: bool) -> None:
    done = avstream(*options, "info", str(tiny_bundle))
    assert done.returncode == 0, done.stderr
    assert (LOADER_LINE in done.stderr) is shown, done.stderr


@pytest.mark.parametrize(("options", "named"), [
    (("--log-level", "LOUD"), ["--log-level", "LOUD", "WARNING"]),
    (("--log-level", "INFO", "-v"), ["--log-level", "-v"]),
])
def test_a_bad_log_level_is_exit_2_in_one_line_naming_the_option(
        options: tuple[str, ...], named: list[str], tmp_path: Path) -> None:
    done = avstream(*options, "info", str(tmp_path))
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("avstream: error:")]
    for word in named:
        assert word in line


def test_help_lists_every_registered_command() -> None:
    done = avstream("--help", env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    for command in ("info", "replay", "live", "devices", "demo", "batch", "serve", "record"):
        assert f" {command} " in done.stdout, command
