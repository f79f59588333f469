#!/usr/bin/env bash
# The README's test command: installs what the suite needs on a fresh machine, then runs it.
#   system packages (needs root + apt): PortAudio, PulseAudio (virtual microphone), ffmpeg
#   (loopback camera stream), Mosquitto (MQTT broker), Chromium (status page), systemd
#   (systemd-analyze); Python: this project with its dev extra (torch CPU pinned).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not live"`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x .ci/live-setup.sh ] || [ -f .ci/live-setup.sh ]; then
  bash .ci/live-setup.sh
fi
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
exec python -m pytest "$@"
