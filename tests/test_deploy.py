"""deploy/avstream.service: checked by systemd's own parser, and its command by the CLI itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from live_env import avstream_command, missing

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "avstream.service"
ENV_EXAMPLE = REPO / "deploy" / "avstream.env.example"
INSTALLED_AT = "/opt/avstream/venv/bin/avstream"


def exec_start() -> str:
    m = re.search(r"^ExecStart=(.*)$", UNIT.read_text(), re.M)
    assert m, "no ExecStart in the unit"
    return m.group(1)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        missing("systemd-analyze is not installed (Debian package systemd; see .ci/live-setup.sh)")
    # The unit as installed, except that the program is this checkout's (verify checks that
    # ExecStart is executable) and the environment file is the example's copy.
    env = tmp_path / "avstream.env"
    env.write_text(ENV_EXAMPLE.read_text())
    text = UNIT.read_text().replace(INSTALLED_AT, f"{sys.executable} -m avstream")
    text = re.sub(r"^EnvironmentFile=.*$", f"EnvironmentFile={env}", text, flags=re.M)
    unit = tmp_path / "avstream.service"
    unit.write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if "avstream.service" in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_unit_command_uses_options_the_cli_has() -> None:
    cmd = exec_start()
    assert cmd.startswith(f"{INSTALLED_AT} live ")
    options = set(re.findall(r"(--[a-z][a-z-]+)", cmd))
    done = subprocess.run(avstream_command("live", "--help"), capture_output=True, text=True,
                          timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin",
                                           "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    for option in options:
        assert option in done.stdout, f"{option} (in the unit) is not an option of avstream live"
    for var in ("AVSTREAM_MQTT", "AVSTREAM_HTTP_TOKEN"):  # secrets come from the env file
        assert var in done.stdout
    for var in re.findall(r"\$\{(\w+)\}", cmd):
        assert re.search(rf"^#?{var}=", ENV_EXAMPLE.read_text(), re.M), f"{var} not in the example"
