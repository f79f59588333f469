"""``avstream replay``: a recorded file through the same buffers, windows and hop code as live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avstream.commands import options as opt
from avstream.driver import (
    Outputs,
    Pace,
    engine_line,
    open_engine,
    pipeline_config,
    run_command,
)
from avstream.inference.engine import Engine
from avstream.outputs.history import DEFAULT_DAYS, DEFAULT_MAX_MB
from avstream.outputs.jsonl import DEFAULT_KEEP
from avstream.outputs.network import recording_stream_name
from avstream.results.summary import open_summary_json, write_summary_json
from avstream.sources.base import SourceInfo
from avstream.sources.media_file import MediaFileSource


def replay(
    media: Annotated[Path, typer.Argument(help="mp4/mov/mkv (with or without audio), or a WAV.")],
    model: opt.Model,
    audio: Annotated[Path | None, typer.Option(
        "--audio", help="WAV to pair with MEDIA's video (TAU style); MEDIA's own audio is ignored.")] = None,
    realtime: Annotated[bool, typer.Option(
        "--realtime/--fast",
        help="Pace to the wall clock like live capture, or run as fast as possible "
             "(default: fast, repeatable output).")] = False,
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
    summary_json: Annotated[Path | None, typer.Option(
        "--summary-json", help="Also write the exit summary as one JSON object to PATH "
                               "(avstream/schemas/summary.schema.json).")] = None,
    mqtt: opt.Mqtt = None,
    mqtt_hop_rate: opt.MqttHopRate = 0.0,
    http: opt.Http = None,
    http_token: opt.HttpToken = None,
    name: opt.Name = None,
    history: opt.History = None,
    history_days: opt.HistoryDays = DEFAULT_DAYS,
    history_max_mb: opt.HistoryMaxMb = DEFAULT_MAX_MB,
    jsonl_rotate: opt.JsonlRotate = None,
    jsonl_keep: opt.JsonlKeep = DEFAULT_KEEP,
) -> None:
    """Replay a recording and print a label per hop (live view and/or JSON lines)."""
    config = pipeline_config(hop, smoothing, smooth_windows, margin, hold, floor)
    outputs = Outputs(jsonl=jsonl, view=view, mqtt=mqtt, mqtt_hop_rate_hz=mqtt_hop_rate,
                      http=http, http_token=http_token,
                      history=history, history_days=history_days, history_max_mb=history_max_mb,
                      jsonl_rotate=jsonl_rotate, jsonl_keep=jsonl_keep,
                      name=name if name is not None else recording_stream_name(media))
    outputs.check()
    summary_file = None if summary_json is None else open_summary_json(summary_json)
    source = MediaFileSource(media, audio)  # opened (probed) before the model: a bad file fails at once

    def headline(info: SourceInfo, engine: Engine, pace: Pace) -> list[str]:
        return [f"replay {info.name} ({'+'.join(info.modalities)}; {'; '.join(info.details)}) "
                f"{engine_line(engine)}, {pace}"]

    done = run_command("avstream", source, lambda: open_engine(model, provider, threads, precision), config, outputs,
                       headline, realtime=realtime)
    if done is not None and summary_file is not None:
        write_summary_json(done.summary, summary_file)
