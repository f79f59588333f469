"""``avstream live``: the daemon on a microphone and a camera, through replay's pipeline.

Faults of the devices are handled in the source (audio-only / video-only, reconnects); this
command parses, checks its options and the devices the user named before anything slow, and
runs the shared recipe (``avstream.driver.run_command``: SIGINT / SIGTERM stop it cleanly, the
summary is printed). Exit 0 after a stop; 2 for a bad option (``--no-mic`` with
``--no-camera``, an output that cannot work); 3 when no device works, a named one does not
exist, or PortAudio is missing.
"""

from __future__ import annotations

import cv2

from avstream.bundle.format import StreamFormat
from avstream.commands import options as opt
from avstream.driver import Outputs, Pace, engine_line, open_engine, pipeline_config, run_command
from avstream.inference.engine import Engine
from avstream.outputs.history import DEFAULT_DAYS, DEFAULT_MAX_MB
from avstream.outputs.jsonl import DEFAULT_KEEP
from avstream.scenes import mono_input_warning, trained_on_warning
from avstream.sources.audio_inputs import resolve_audio_input
from avstream.sources.base import SourceInfo
from avstream.sources.device_spec import parse_device
from avstream.sources.live import LiveOptions, LiveSource, with_video_delay
from avstream.sources.stream_av import CAMERA_AUDIO
from avstream.stream.conform import describe_conversion


def capture_options(mic: str | None, camera: str, no_mic: bool, no_camera: bool,
                    video_delay_s: float = 0.0) -> LiveOptions:
    """The devices ``live`` and ``record`` were asked for. The microphone is resolved once, here:
    an unknown device or no PortAudio fails before anything slow; ``--mic camera`` is the camera
    stream's own audio track, with no PortAudio involved."""
    camera_audio = not no_mic and mic is not None and mic.strip() == CAMERA_AUDIO
    device = (None if no_mic else CAMERA_AUDIO if camera_audio
              else resolve_audio_input(None if mic is None else parse_device(mic)))
    return LiveOptions(mic=device, camera=parse_device(camera), use_mic=not no_mic,
                       use_camera=not no_camera, video_delay_s=video_delay_s)


def _audio_line(info: SourceInfo, spec: StreamFormat) -> str:
    """What happens to the microphone's audio on the way to the model, in the words of the
    summary (``avstream.stream.conform.describe_conversion``)."""
    if not info.has_audio:
        return "audio: none (--no-mic)"
    if info.camera_audio:
        if info.audio_rate_hz is None:
            return "audio: the camera stream's own track, not open yet (reconnecting)"
        return "audio: the camera stream's own track, " + describe_conversion(
            info.audio_rate_hz, info.audio_channels or spec.channels, spec.sample_rate,
            spec.channels)
    if info.audio_rate_hz is None or info.audio_channels is None:
        return "audio: microphone not open yet (reconnecting)"
    return "audio: " + describe_conversion(info.audio_rate_hz, info.audio_channels,
                                           spec.sample_rate, spec.channels)


def live(
    model: opt.Model,
    mic: opt.Mic = None,
    camera: opt.Camera = "0",
    no_mic: opt.NoMic = False,
    no_camera: opt.NoCamera = False,
    jsonl: opt.Jsonl = None,
    hop: opt.Hop = opt.DEFAULT_HOP_S,
    provider: opt.Provider = None,
    precision: opt.Precision = opt.DEFAULT_PRECISION,
    threads: opt.Threads = 0,
    smoothing: opt.Smoothing = opt.SMOOTHING_DEFAULTS.method,
    smooth_windows: opt.SmoothWindows = opt.SMOOTHING_DEFAULTS.windows,
    margin: opt.Margin = opt.SMOOTHING_DEFAULTS.margin,
    hold: opt.Hold = opt.SMOOTHING_DEFAULTS.hold_hops,
    floor: opt.Floor = opt.SMOOTHING_DEFAULTS.floor,
    view: opt.View = None,
    mqtt: opt.LiveMqtt = None,
    mqtt_hop_rate: opt.MqttHopRate = 0.0,
    http: opt.Http = None,
    http_token: opt.HttpToken = None,
    name: opt.Name = None,
    history: opt.History = None,
    history_days: opt.HistoryDays = DEFAULT_DAYS,
    history_max_mb: opt.HistoryMaxMb = DEFAULT_MAX_MB,
    jsonl_rotate: opt.JsonlRotate = None,
    jsonl_keep: opt.JsonlKeep = DEFAULT_KEEP,
    video_delay: opt.VideoDelay = 0.0,
) -> None:
    """Classify the scene from a microphone and a camera until SIGINT / SIGTERM."""
    # OpenCV's own warnings (stream timeouts while reconnecting) repeat what the source reports
    # in one line per event; errors still show.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    config = pipeline_config(hop, smoothing, smooth_windows, margin, hold, floor)
    outputs = Outputs(jsonl=jsonl, view=view, mqtt=mqtt, mqtt_hop_rate_hz=mqtt_hop_rate,
                      http=http, http_token=http_token, name=name,
                      history=history, history_days=history_days, history_max_mb=history_max_mb,
                      jsonl_rotate=jsonl_rotate, jsonl_keep=jsonl_keep)
    outputs.check()
    options = capture_options(mic, camera, no_mic, no_camera, video_delay)
    config = with_video_delay(config, video_delay)

    def open_devices() -> LiveSource:
        source = LiveSource(options)
        source.open()
        return source

    def headline(info: SourceInfo, engine: Engine, pace: Pace) -> list[str]:
        notes = [trained_on_warning(engine.training_data),
                 mono_input_warning(engine.training_data, info.audio_channels,
                                    engine.format.channels)]
        return [f"live {info.name} ({'+'.join(info.modalities)}) {engine_line(engine)}",
                *(n for n in notes if n), *info.details, _audio_line(info, engine.format)]

    # Devices open once the model is ready; a stop request from the start is the run's.
    run_command("avstream", open_devices, lambda: open_engine(model, provider, threads, precision),
                config, outputs, headline)
