"""Running ``avstream`` as a user does (a child process) and reading back what it wrote.

Shared by the tests that hold the README's promises: they see only the command line, the exit
code, stdout/stderr and the files written, so they survive any rewrite of the internals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLI_TIMEOUT_S = 120

# Runs the CLI after one change made in the child process only: ``PATCH`` (Python source,
# the first argument) is executed, then ``avstream`` runs with the remaining arguments.
PATCHED_CLI = (
    "import sys\n"
    "exec(sys.argv[1])\n"
    "from avstream.cli import main\n"
    "sys.argv = ['avstream', *sys.argv[2:]]\n"
    "main()\n"
)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    lines: list[dict[str, Any]]
    """The JSON lines written (empty without --jsonl)."""
    summary: dict[str, Any] | None
    """The --summary-json object, if one was written (None if the run ended before it)."""

    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("avstream: error:")]


def command(*args: str, patch: str | None = None) -> list[str]:
    """The argv of ``avstream ARGS`` as a child process (after the Python source ``patch``):
    for ``Popen``, ``timeout -s KILL``, a notify socket, where ``avstream()`` does not fit."""
    head = ([sys.executable, "-c", PATCHED_CLI, patch] if patch is not None
            else [sys.executable, "-m", "avstream"])
    return [*head, *args]


def child_env(**extra: str) -> dict[str, str]:
    """This environment with this process's import path, so the child runs the same tree (a
    mutant's copy included), plus ``extra``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **extra}


def avstream(*args: str, patch: str | None = None, env: dict[str, str] | None = None,
             timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``avstream ARGS`` run to its end from the repository's root; ``env`` replaces the whole
    environment (default: ``child_env()``)."""
    return subprocess.run(command(*args, patch=patch), capture_output=True, text=True, cwd=REPO,
                          env=child_env() if env is None else env, timeout=timeout, check=False)


def replay(media: Path, bundle: Path, out_dir: Path, *extra: str, name: str = "run",
           patch: str | None = None, pace: str = "--fast") -> Run:
    """``avstream replay MEDIA --model BUNDLE --fast --jsonl F --summary-json S [extra]``
    (``pace="--realtime"`` for a paced replay)."""
    jsonl = out_dir / f"{name}.jsonl"
    summary = out_dir / f"{name}.summary.json"
    done = avstream("replay", str(media), "--model", str(bundle), pace, "--no-view",
                    "--jsonl", str(jsonl), "--summary-json", str(summary), *extra, patch=patch)
    lines = ([json.loads(ln) for ln in jsonl.read_text().splitlines()] if jsonl.exists() else [])
    text = summary.read_text() if summary.exists() else ""  # opened at start, written at the end
    return Run(done.returncode, done.stdout, done.stderr, lines, json.loads(text) if text else None)


def bundle_classes(bundle: Path) -> list[str]:
    """The classes in the order the bundle's manifest.json lists them (its output order)."""
    return list(json.loads((bundle / "manifest.json").read_text())["classes"])
