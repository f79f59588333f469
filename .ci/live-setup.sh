#!/usr/bin/env bash
# System components for the `live` tests (pytest -m live) and for `avstream live` itself:
#   libportaudio2       PortAudio, loaded by the Python package sounddevice (microphone capture);
#                       without it `import sounddevice` raises OSError.
#   pulseaudio          the virtual microphone: a null sink whose monitor is the default source.
#   pulseaudio-utils    paplay (plays the test recording into the sink) and pactl (readiness check).
#   libasound2-plugins  ALSA's pulse plugin: PortAudio (ALSA host API) reaches PulseAudio through
#                       it, as device "pulse" (and "default"); `avstream devices` lists it.
#   ffmpeg              serves the test camera: a clip sent as MPEG-TS to udp://127.0.0.1:<port>.
#   coreutils           `timeout` bounds every subprocess the tests start (always present).
#   mosquitto           the MQTT broker of the output tests (started per test on a loopback port
#                       with its own config; the package's own service is not needed).
#   chromium            the browser that loads the status page (driven by Playwright's Python
#   chromium-driver     package with executable_path=/usr/bin/chromium: Playwright's own browser
#                       download is not used); chromium-driver for WebDriver clients.
#   systemd             systemd-analyze, which verifies deploy/avstream.service.
# Nothing is started here: tests/live_env.py starts (and kills) a private PulseAudio per test
# module and an ffmpeg per camera run, on loopback only.
#
# PulseAudio as root (CI containers): it prints "This program is not intended to be run as root
# (unless --system is specified)" and then works in per-user mode. No --system is needed (system
# mode would want a `pulse` user and D-Bus). The tests run it in the foreground
# (`pulseaudio --daemonize=no --exit-idle-time=-1 --disallow-exit -n -F <script>`) with its own
# PULSE_RUNTIME_PATH / PULSE_STATE_PATH / HOME under a temp dir, load
#   module-null-sink sink_name=vsink, module-native-protocol-unix auth-anonymous=1 socket=<dir>/native,
#   set-default-source vsink.monitor
# and point clients at it with PULSE_SERVER=unix:<dir>/native, so it can neither meet another
# PulseAudio on the machine nor be autospawned twice. --daemonize=yes also works here, but then
# teardown has to find the daemon's pid in its runtime dir; a foreground child is killed by pid.
#
# Kernel modules (snd-aloop, v4l2loopback) are not needed, and are not available on these machines.
# Idempotent: installs only what is missing. Needs root (or sudo) and the Debian/Ubuntu archive.
set -euo pipefail

PACKAGES=(libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins ffmpeg coreutils
          mosquitto chromium chromium-driver systemd)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "live-setup: all present (${PACKAGES[*]})"
else
  echo "live-setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO="sudo"
    else
      echo "live-setup: need root (or sudo) to apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Fail here, with the reason, rather than in the middle of a test.
for exe in pulseaudio pactl paplay ffmpeg timeout mosquitto chromium systemd-analyze; do
  command -v "$exe" >/dev/null 2>&1 || { echo "live-setup: $exe missing after install" >&2; exit 1; }
done
ls /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so >/dev/null 2>&1 \
  || { echo "live-setup: ALSA pulse plugin missing after install (libasound2-plugins)" >&2; exit 1; }
