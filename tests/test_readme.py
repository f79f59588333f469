"""Every command the README shows exists, with every option it is shown with.

The README's code blocks are what a newcomer types. Each `avstream ...`, `python -m training|export`,
`python -m bench.NAME` and `python bench/*.py` line is checked against the real command's own `--help`: the sub-command
must exist and every `--option` written on the line must be one it takes. What the commands do
is held by the tests named in tests/README.md; this test keeps the README from drifting away from
the command line (a renamed flag, a removed command).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HELP_TIMEOUT_S = 120
HELP_COLUMNS = "300"  # wide enough that rich never wraps or truncates an option name


def readme_commands() -> list[str]:
    """Each command line of the README's bash blocks, continuation lines joined, comments cut."""
    text = (REPO / "README.md").read_text()
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in line.split("&&"))
    return commands


def program_of(words: list[str]) -> list[str] | None:
    """The words that name the command and its sub-command (what `--help` is asked of)."""
    if words[:1] == ["avstream"] and len(words) > 1:
        return [sys.executable, "-m", "avstream", words[1]]
    if words[:3] in (["python", "-m", "training"],) and len(words) > 3:
        return [sys.executable, "-m", "training", words[3]]
    if words[:3] == ["python", "-m", "export"]:
        return [sys.executable, "-m", "export"]
    if words[:2] == ["python", "-m"] and len(words) > 2 and words[2].startswith("bench."):
        return [sys.executable, "-m", words[2]]
    if words[:1] == ["python"] and len(words) > 1 and words[1].startswith("bench/"):
        return [sys.executable, words[1]]
    return None


@cache
def help_text(program: tuple[str, ...]) -> str:
    env = {**os.environ, "COLUMNS": HELP_COLUMNS, "TERM": "dumb", "NO_COLOR": "1"}
    done = subprocess.run([*program, "--help"], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=HELP_TIMEOUT_S)
    assert done.returncode == 0, f"{' '.join(program)} --help: {done.stderr[-2000:]}"
    return done.stdout


CHECKED = [c for c in readme_commands() if program_of(shlex.split(c.replace("<", "").replace(">", "")))]


def test_the_readme_shows_the_commands_a_newcomer_needs() -> None:
    firsts = {shlex.split(c)[1] for c in CHECKED if c.startswith("avstream ")}
    assert {"demo", "live", "replay", "devices", "info", "batch", "serve"} <= firsts
    assert "bash scripts/test.sh" in readme_commands()


@pytest.mark.parametrize("command", CHECKED)
def test_each_readme_command_exists_with_the_options_it_is_shown_with(command: str) -> None:
    words = shlex.split(command.replace("<", "").replace(">", ""))
    program = program_of(words)
    assert program is not None
    text = help_text(tuple(program))
    for option in (w.split("=", 1)[0] for w in words if w.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (
            f"README: `{command}`: {option} is not an option of {' '.join(program[1:])}")
