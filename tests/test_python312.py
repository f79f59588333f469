"""The daemon on Python 3.12 (README, "Requirements"): it installs there and replays a recording
into exactly the lines that the suite's Python writes.

The daemon's dependencies have 3.12 wheels on PyPI; training's pinned torch CPU wheel is a 3.11
one here, so only the daemon (no `train` extra) is installed into a fresh 3.12 virtual
environment. The interpreter comes from pyenv or the system; a machine with neither skips with
the reason (a failure under AVSTREAM_REQUIRE_LIVE=1: CI's machine has pyenv's 3.12).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.cli_run import REPO, avstream
from tests.live_env import missing
from tests.replay_helpers import VOLATILE

INSTALL_TIMEOUT_S = 600
REPLAY_TIMEOUT_S = 300


def python312() -> Path | None:
    """A Python 3.12 interpreter that really runs (pyenv's shim exists even where 3.12 is not
    selected, and then fails)."""
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    candidates = [*(p for r in roots if r for p in sorted(glob.glob(f"{r}/versions/3.12*/bin/python3.12"))),
                  "/usr/bin/python3.12", "/usr/local/bin/python3.12", shutil.which("python3.12") or ""]
    for c in candidates:
        if not c or not Path(c).exists():
            continue
        probe = subprocess.run([c, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return Path(c)
    return None


def lines_without_clock(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        record = json.loads(line)
        for key in VOLATILE:
            record.pop(key, None)
        out.append(record)
    return out


def test_the_daemon_installs_on_python_312_and_replays_exactly_as_here(
        tmp_path: Path, trained_bundle: Path, synth_stream: tuple[Path, Path]) -> None:
    interpreter = python312()
    if interpreter is None:
        missing("no Python 3.12 interpreter (pyenv's versions/3.12*, or /usr/bin/python3.12)")
    venv = tmp_path / "venv312"
    subprocess.run([str(interpreter), "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "-e", f"{REPO}[live,mqtt,http]"],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    assert install.returncode == 0, install.stderr[-3000:]
    media = synth_stream[0]
    args = ["replay", str(media), "--model", str(trained_bundle), "--fast", "--jsonl", "-"]
    # The 3.12 environment's own entry point, with none of this interpreter's import path.
    there = avstream(*args, program=[str(venv / "bin" / "avstream")], env=dict(os.environ),
                     timeout=REPLAY_TIMEOUT_S, cwd=tmp_path)
    assert there.returncode == 0, there.stderr[-3000:]
    here = avstream(*args, timeout=REPLAY_TIMEOUT_S, cwd=tmp_path)
    assert here.returncode == 0, here.stderr[-3000:]
    lines_312, lines_here = lines_without_clock(there.stdout), lines_without_clock(here.stdout)
    assert len(lines_312) > 100
    assert lines_312 == lines_here
