"""``avstream replay``: a recorded file through the same buffers, windows and hop code as live."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from avstream.cli import app
from avstream.driver import Outputs, drive, open_engine, pipeline_config
from avstream.smoothing import SmoothingConfig
from avstream.sources.media_file import MediaFileSource
from avstream.windows import DEFAULT_HOP_MS, MS_PER_S

_S = SmoothingConfig()


@app.command()
def replay(
    media: Annotated[Path, typer.Argument(help="mp4/mov/mkv (with or without audio), or a WAV.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Bundle directory (from export).")],
    audio: Annotated[Path | None, typer.Option(
        "--audio", help="WAV to pair with MEDIA's video (TAU style); MEDIA's own audio is ignored.")] = None,
    realtime: Annotated[bool, typer.Option(
        "--realtime/--fast",
        help="Pace to the wall clock like live capture, or run as fast as possible "
             "(default: fast, repeatable output).")] = False,
    jsonl: Annotated[str | None, typer.Option(
        "--jsonl", help="Write one JSON object per hop to PATH ('-' for stdout).")] = None,
    hop: Annotated[float, typer.Option(
        "--hop", help="Seconds between windows (default one frame period: one new frame per "
                      "hop).")] = DEFAULT_HOP_MS / MS_PER_S,
    provider: Annotated[str | None, typer.Option(
        "--provider", help="Force an ONNX Runtime provider (cpu, cuda, or a full name); "
                           "default CUDA then CPU.")] = None,
    threads: Annotated[int, typer.Option(
        "--threads", help="Intra-op threads per graph (0: CPUs available, at most 4).")] = 0,
    smoothing: Annotated[str, typer.Option("--smoothing", help="mean or ema.")] = _S.method,
    smooth_windows: Annotated[int, typer.Option(
        "--smooth-windows", help="Windows averaged (N).")] = _S.windows,
    margin: Annotated[float, typer.Option(
        "--margin", help="Lead a new label needs over the current one.")] = _S.margin,
    hold: Annotated[int, typer.Option(
        "--hold", help="Consecutive hops the lead must last (K).")] = _S.hold_hops,
    floor: Annotated[float, typer.Option(
        "--floor", help="Below this confidence the label is 'unknown'.")] = _S.floor,
    view: Annotated[bool | None, typer.Option(
        "--view/--no-view", help="Live terminal view (default: when stdout is a terminal).")] = None,
) -> None:
    """Replay a recording and print a label per hop (live view and/or JSON lines)."""
    config = pipeline_config(hop, smoothing, smooth_windows, margin, hold, floor)
    engine = open_engine(model, provider, threads)
    source = MediaFileSource(media, audio)
    outputs = Outputs(jsonl=jsonl, view=view)
    sinks, stdout_taken = outputs.sinks()
    info = source.info
    out = sys.stderr if stdout_taken else sys.stdout
    providers = sorted({p[0] for p in engine.providers.values()})
    print(f"avstream: replay {info.name} ({'+'.join(info.modalities)}; "
          f"{'; '.join(info.details)}) on {', '.join(providers)}, "
          f"{'realtime' if realtime else 'fast'}", file=sys.stderr)
    summary = drive(source, engine, config, sinks, realtime=realtime)
    print(summary.render_text(), file=out)
