"""``avstream record DATASET --scene NAME``: one take of a place of your own.

Captures through the live sources (``avstream.sources.live``, as ``avstream live`` does), so a
take holds what the daemon will hear and see; writes ``DATASET/<scene>/<UTC time>.mkv``
atomically (``avstream.recorder``); then prints what the dataset holds. Exit 0 with a take
written; 2 for a bad scene name or option; 3 when a device is missing, does not deliver or is
lost mid-take (nothing kept); 130 when a stop request (SIGINT or SIGTERM) ended the take
(nothing kept).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated

import cv2
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from avstream.commands import options as opt
from avstream.commands.live import capture_options
from avstream.driver import stop_on_signals
from avstream.recorder import Progress, Stopped, TakeOptions, record_take
from avstream.sources.live import LiveSource
from avstream.takes import check_scene_name, new_take_path, summarize

EXIT_STOPPED = 130
"""The shell's code for a command ended by a stop request (128 + SIGINT)."""
LEVEL_BAR_DB = 60.0
"""The level bar spans -60..0 dBFS."""


def _bar(db: float, width: int = 30) -> str:
    filled = int(round(width * max(0.0, min(1.0, (db + LEVEL_BAR_DB) / LEVEL_BAR_DB))))
    return "#" * filled + "-" * (width - filled)


def _render(p: Progress, scene: str) -> Text:
    head = (f"recording '{scene}': {p.left_s:4.1f} s left" if p.phase == "recording"
            else f"get ready: recording '{scene}' starts in {p.left_s:3.1f} s")
    levels = "\n".join(f"ch{i + 1} {_bar(db)} {db:6.1f} dBFS" for i, db in enumerate(p.levels_db))
    return Text(f"{head}\n{levels or 'no audio'}", style="bold red" if p.phase == "recording" else "")


def _summary_table(dataset: Path) -> Table:
    table = Table(title=f"{dataset} now holds")
    for col in ("scene", "takes", "seconds"):
        table.add_column(col, justify="left" if col == "scene" else "right")
    for s in summarize(dataset):
        note = f" ({len(s.unreadable)} unreadable: {', '.join(s.unreadable)})" if s.unreadable else ""
        table.add_row(s.scene + note, str(s.takes), f"{s.seconds:.1f}")
    return table


def record(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (DATASET/<scene>/<take>.mkv).")],
    scene: Annotated[str, typer.Option("--scene", help="Scene name: a-z, 0-9 and _, e.g. kitchen.")],
    seconds: Annotated[float, typer.Option("--seconds", help="Length of the take, seconds.")] = 10.0,
    countdown: Annotated[float, typer.Option(
        "--countdown", help="Seconds to get ready (levels shown) before the take starts.")] = 3.0,
    mic: opt.Mic = None,
    camera: opt.Camera = "0",
    no_mic: opt.NoMic = False,
    no_camera: opt.NoCamera = False,
) -> None:
    """Record one take of a scene into a dataset of your own places."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    check_scene_name(scene)
    options = TakeOptions(seconds=seconds, countdown_s=countdown, audio=not no_mic,
                          video=not no_camera)
    live = capture_options(mic, camera, no_mic, no_camera)
    take = new_take_path(dataset, scene)
    console = Console()
    tty = console.is_terminal
    err = Console(stderr=True)
    with stop_on_signals(threading.Event(), interrupt=False) as stop:
        source = LiveSource(live)
        info = source.open()
        for line in info.details:
            err.print(line, highlight=False)
        err.print(f"recording {options.seconds:g} s of '{scene}' into {take}", highlight=False)
        try:
            if tty:
                with Live(Text(""), console=console, refresh_per_second=10, transient=True) as view:
                    result = record_take(source, take, options, stop,
                                         lambda p: view.update(_render(p, scene)))
            else:
                result = record_take(source, take, options, stop)
        except Stopped:
            err.print(f"stopped: the take was discarded, {take.name} not written", highlight=False)
            raise typer.Exit(EXIT_STOPPED) from None
        finally:
            source.close()
    audio = (f"{result.audio_samples} samples at {result.audio_rate_hz} Hz, "
             f"{result.audio_channels} ch" if result.audio_rate_hz else "no audio")
    video = (f"{result.frames} frames of {result.frame_size[0]}x{result.frame_size[1]}"
             if result.frame_size else "no video")
    console.print(f"wrote {result.path} ({audio}; {video})", highlight=False)
    console.print(_summary_table(dataset))
    sys.stdout.flush()

