"""Running ``avstream`` as a user does (a child process) and reading back what it wrote.

The one way the tests launch the CLI: ``avstream()`` runs a command to its end, ``start()``
runs one in the background (a daemon, a server, a run to be signalled), ``module()`` runs the
project's other command lines (``python -m training``, ``export``, ``bench.NAME``). Tests see
only the command line, the exit code, stdout/stderr and the files written, so they survive any
rewrite of the internals. Every child has a time bound and never reads the test's standard
input.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

REPO: Final[Path] = Path(__file__).resolve().parents[1]
CLI_TIMEOUT_S: Final[float] = 120.0
STOP_TIMEOUT_S: Final[float] = 15.0
"""How long a stopped child may take to write its summary and exit."""
KILL_WAIT_S: Final[float] = 5.0
POLL_S: Final[float] = 0.05

# Runs the CLI after one change made in the child process only: ``PATCH`` (Python source,
# the first argument) is executed, then ``avstream`` runs with the remaining arguments.
PATCHED_CLI: Final[str] = (
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


def _argv(args: Sequence[str], patch: str | None, program: Sequence[str] | None) -> list[str]:
    if program is not None:
        if patch is not None:
            raise ValueError("patch runs this interpreter's avstream: not with program")
        return [*program, *args]
    head = ([sys.executable, "-c", PATCHED_CLI, patch] if patch is not None
            else [sys.executable, "-m", "avstream"])
    return [*head, *args]


def child_env(**extra: str) -> dict[str, str]:
    """This environment with this process's import path, so the child runs the same tree (a
    mutant's copy included), plus ``extra``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **extra}


def avstream(*args: str, patch: str | None = None, env: dict[str, str] | None = None,
             timeout: float = CLI_TIMEOUT_S, cwd: Path = REPO,
             program: Sequence[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``avstream ARGS`` run to its end (from the repository's root unless ``cwd``).

    ``patch``: Python source run in the child first (a fault made there only). ``env`` replaces
    the whole environment (default: ``child_env()``). ``program``: the argv that stands for
    ``avstream`` when it is not this interpreter's (another environment's ``bin/avstream``).
    """
    return _run(_argv(args, patch, program), env, timeout, cwd)


def module(name: str, *args: str, env: dict[str, str] | None = None,
           timeout: float = CLI_TIMEOUT_S, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -m NAME ARGS`` (``training``, ``export``, ``bench.latency``, ...) run to its end
    with this interpreter; ``env`` and ``cwd`` as for ``avstream()``."""
    return _run([sys.executable, "-m", name, *args], env, timeout, cwd)


def succeeded(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """``done``, once it is known to have exited 0 (else AssertionError naming the command, with
    the end of its stderr): for a step that a test builds on."""
    assert done.returncode == 0, f"{done.args[:6]}: exit {done.returncode}\n{done.stderr[-3000:]}"
    return done


def _run(argv: list[str], env: dict[str, str] | None, timeout: float,
         cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd,
                          env=child_env() if env is None else env, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Kill a child started in its own session (``start_new_session=True``) and everything it
    started."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    try:
        proc.wait(KILL_WAIT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(KILL_WAIT_S)


@dataclass
class Child:
    """``avstream`` running in the background under ``timeout -s KILL``, in its own process
    group; its stdout and stderr go to files, read while it runs and at the end.

    A signal sent to ``proc`` (``timeout``) is passed on to avstream, and ``timeout`` exits
    with avstream's own status (124 or 137 only when the bound itself fired).
    """

    proc: subprocess.Popen
    stdout_path: Path
    stderr_path: Path

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_for_stderr(self, needle: str, timeout_s: float) -> bool:
        return self._wait(self.stderr_text, needle, 1, timeout_s)

    def wait_for_stdout(self, needle: str, timeout_s: float) -> bool:
        return self._wait(self.stdout_text, needle, 1, timeout_s)

    def wait_for_lines(self, n: int, timeout_s: float) -> bool:
        return self._wait(self.stdout_text, "\n", n, timeout_s)

    def wait_for_stdout_count(self, needle: str, n: int, timeout_s: float) -> bool:
        return self._wait(self.stdout_text, needle, n, timeout_s)

    def search_stderr(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The first match of ``pattern`` on stderr; AssertionError (with stderr's end) if the
        child ends or the time runs out first."""
        deadline = time.monotonic() + timeout_s
        while True:
            m = re.search(pattern, self.stderr_text())
            if m or self.proc.poll() is not None or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        m = m or re.search(pattern, self.stderr_text())
        if m is None:
            raise AssertionError(f"no {pattern!r} on stderr:\n{self.stderr_text()[-3000:]}")
        return m

    def _wait(self, read: Callable[[], str], needle: str, n: int, timeout_s: float) -> bool:
        """Until ``read()`` holds ``needle`` at least ``n`` times (False if the child ends or
        the time runs out first)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if read().count(needle) >= n:
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(POLL_S)
        return read().count(needle) >= n

    def wait(self, timeout_s: float) -> int:
        """Its exit code once it ends by itself; the group is killed if it has not within
        ``timeout_s`` (and TimeoutExpired raised)."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Send ``sig`` (as systemd or Ctrl-C would) and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL to the whole group: what is left of a run the test is done with."""
        kill_group(self.proc)


def start(*args: str, workdir: Path, bound_s: float, env: dict[str, str] | None = None,
          patch: str | None = None, name: str = "avstream", cwd: Path = REPO,
          python_module: str | None = None) -> Child:
    """``avstream ARGS`` (or ``python -m PYTHON_MODULE ARGS``) started in the background;
    ``workdir/NAME.stdout`` and ``.stderr`` receive its output; killed by ``timeout`` after
    ``bound_s`` whatever happens. ``env`` and ``patch`` as for ``avstream()``. The caller ends
    it: ``stop()``, ``wait()`` or ``kill()``."""
    out, err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    argv = (_argv(args, patch, None) if python_module is None
            else [sys.executable, "-m", python_module, *args])
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(["timeout", "-s", "KILL", f"{bound_s:g}", *argv],
                                cwd=cwd, env=child_env() if env is None else env,
                                stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                start_new_session=True)
    return Child(proc=proc, stdout_path=out, stderr_path=err)


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
