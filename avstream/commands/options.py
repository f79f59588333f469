"""Options shared by the commands that run a pipeline (replay, live, demo): one definition each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avstream.bundle.schema import AUTO, PRECISIONS
from avstream.stream.smoothing import SmoothingConfig
from avstream.stream.windows import DEFAULT_HOP_MS, MS_PER_S

SMOOTHING_DEFAULTS = SmoothingConfig()
DEFAULT_HOP_S = DEFAULT_HOP_MS / MS_PER_S

Model = Annotated[Path, typer.Option("--model", "-m", help="Bundle directory (from export).")]
Jsonl = Annotated[str | None, typer.Option(
    "--jsonl", help="Write one JSON object per hop to PATH ('-' for stdout).")]
Hop = Annotated[float, typer.Option(
    "--hop", help="Seconds between windows (default one frame period: one new frame per hop).")]
Provider = Annotated[str | None, typer.Option(
    "--provider", help="Force an ONNX Runtime provider (cpu, cuda, or a full name); "
                       "default CUDA then CPU.")]
DEFAULT_PRECISION = AUTO
Precision = Annotated[str, typer.Option(
    "--precision", help=f"{AUTO} (per graph the fastest precision the bundle's export timed, "
                        f"e.g. int8 frame encoder and fp32 audio graph on a CPU; without timings "
                        f"int8 on the CPU, fp16 on CUDA, when shipped), or one of "
                        f"{', '.join(PRECISIONS)} for every graph; a precision the bundle lacks "
                        f"is an error.")]
Threads = Annotated[int, typer.Option(
    "--threads", help="Intra-op threads per graph (0: CPUs available, at most 4).")]
Smoothing = Annotated[str, typer.Option("--smoothing", help="mean or ema.")]
SmoothWindows = Annotated[int, typer.Option("--smooth-windows", help="Windows averaged (N).")]
Margin = Annotated[float, typer.Option("--margin", help="Lead a new label needs over the current one.")]
Hold = Annotated[int, typer.Option("--hold", help="Consecutive hops the lead must last (K).")]
Floor = Annotated[float, typer.Option("--floor", help="Below this confidence the label is 'unknown'.")]
View = Annotated[bool | None, typer.Option(
    "--view/--no-view", help="Live terminal view (default: when stdout is a terminal).")]
# Capture devices (live, record): the same devices, named the same way.
Mic = Annotated[str | None, typer.Option(
    "--mic", help="Audio input: PortAudio index or a name substring (see `avstream devices`), or "
                  "'camera' for the audio track of the --camera stream URL (an IP camera's own "
                  "microphone); default: the system's default input.")]
VideoDelay = Annotated[float, typer.Option(
    "--video-delay", metavar="SECONDS",
    help="How much later the camera's pictures arrive than the microphone's sound of the same "
         "moment (a network camera: often 0.5-2 s); each frame is placed that much earlier so "
         "windows pair sound and pictures of one moment. Not needed with --mic camera.")]
Camera = Annotated[str, typer.Option(
    "--camera", help="Camera index, or a stream URL (rtsp://, http://, udp://...).")]
NoMic = Annotated[bool, typer.Option("--no-mic", help="Video only.")]
NoCamera = Annotated[bool, typer.Option("--no-camera", help="Audio only.")]
Ray = Annotated[str | None, typer.Option(
    "--ray", metavar="[ADDRESS]",
    help="Run on Ray: alone, a local Ray instance; with an address (auto, HOST:PORT, "
         "ray://HOST:PORT), that cluster. Needs the cluster extra.")]

# Network outputs (avstream/outputs/network.py). The live service's MQTT URL and the HTTP token
# also come from the environment, so a service's secrets need not be on its command line.
MQTT_HELP = ("Publish to an MQTT broker, with Home Assistant discovery: "
             "mqtt://USER:PASS@HOST:PORT/PREFIX, or mqtts:// for TLS (all but the host "
             "optional; port 1883, 8883 for mqtts; prefix 'avstream'). Settings after '?', "
             "joined by '&': ca=FILE, cert=FILE, key=FILE (PEM, mqtts only), "
             "discovery_prefix=P (default homeassistant), confidence_interval=SECONDS "
             "(default 10); see docs/home-assistant.md.")
Mqtt = Annotated[str | None, typer.Option("--mqtt", help=MQTT_HELP)]
"""For commands that replay a recording: no environment default, so a replay on a host whose
live service exports AVSTREAM_MQTT never publishes as that service's device."""
LiveMqtt = Annotated[str | None, typer.Option(
    "--mqtt", envvar="AVSTREAM_MQTT", show_envvar=True, help=MQTT_HELP)]
MqttHopRate = Annotated[float, typer.Option(
    "--mqtt-hop-rate", help="Full hop records per second (stream time) on <prefix>/<name>/hop; "
                            "0: none.")]
Http = Annotated[str | None, typer.Option(
    "--http", help="Serve a live page, /status, /metrics and /events on PORT or HOST:PORT "
                   "(127.0.0.1 unless HOST is given; any other host needs --http-token).")]
HttpToken = Annotated[str | None, typer.Option(
    "--http-token", envvar="AVSTREAM_HTTP_TOKEN", show_envvar=True,
    help="Bearer token every HTTP request must carry (required off loopback).")]
Name = Annotated[str | None, typer.Option(
    "--name", help="This stream's name in MQTT topics, Home Assistant ids and metrics "
                   "(default: the host name for live, replay-<file stem> for replay, demo for "
                   "demo).")]

# History and file rotation (avstream/outputs/history.py, avstream/outputs/jsonl.py).
History = Annotated[str | None, typer.Option(
    "--history", metavar="PATH",
    help="Keep label changes and per-minute mean confidence in the SQLite file PATH "
         "(read it with 'avstream history PATH', or /history with --http).")]
HistoryDays = Annotated[float, typer.Option(
    "--history-days", help="Days of history kept; older rows are removed.")]
HistoryMaxMb = Annotated[float, typer.Option(
    "--history-max-mb", help="Bound on the history's rows in MB; past it the oldest go.")]
JsonlRotate = Annotated[str | None, typer.Option(
    "--jsonl-rotate", metavar="SIZE|daily",
    help="Start a new --jsonl file past SIZE (e.g. 100MB) or each UTC day; the old one is "
         "renamed <stem>.<UTC start><suffix>.")]
JsonlKeep = Annotated[int, typer.Option(
    "--jsonl-keep", help="Renamed --jsonl files kept with --jsonl-rotate (the oldest go).")]
