"""Running a pipeline as a command: open the model, pick the outputs, stop on signals.

Shared by ``avstream replay`` and ``avstream live``: the commands only parse options, call
these and print. Pacing is decided here, never in the inference path: ``fast`` feeds the
file as quickly as it decodes, ``realtime`` releases it at the wall-clock pace of capture
(``PacedSource``), and a live source paces itself.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from avstream.bundle.loader import load_bundle
from avstream.clock import WallClock
from avstream.errors import AvstreamError, MediaError
from avstream.inference.engine import Engine
from avstream.inference.session import SessionConfig
from avstream.outputs import Sink
from avstream.outputs.jsonl import JsonlSink
from avstream.outputs.live_view import LiveView
from avstream.outputs.network import network_sinks
from avstream.outputs.summary import RunSummary
from avstream.outputs.watchdog import watchdog_sinks
from avstream.pipeline import Pipeline, PipelineConfig
from avstream.smoothing import SmoothingConfig
from avstream.sources.base import Source, SourceInfo
from avstream.sources.paced import PacedSource
from avstream.windows import hop_ms_from_seconds

log = logging.getLogger(__name__)


def open_engine(model: str | Path, provider: str | None = None, threads: int = 0,
                precision: str = "auto") -> Engine:
    """Load and verify a bundle, then start its sessions at ``precision`` (auto: int8 on the
    CPU, fp16 on CUDA, when the bundle ships them); BundleError / ProviderError otherwise."""
    try:
        sessions = SessionConfig(provider=provider, intra_threads=threads)
    except ValueError as e:
        raise AvstreamError(str(e)) from e
    return Engine(load_bundle(model), sessions, precision)


def pipeline_config(hop_s: float, method: str, windows: int, margin: float, hold: int,
                    floor: float) -> PipelineConfig:
    """Options as the user typed them -> PipelineConfig; a bad value is one AvstreamError line."""
    try:
        return PipelineConfig(
            hop_ms=hop_ms_from_seconds(hop_s),
            smoothing=SmoothingConfig(method=method, windows=windows, margin=margin,  # type: ignore[arg-type]
                                      hold_hops=hold, floor=floor),
        )
    except ValueError as e:
        raise AvstreamError(str(e)) from e


@dataclass(frozen=True)
class Outputs:
    jsonl: str | None = None
    """A path, '-' for stdout, or None."""
    view: bool | None = None
    """The rich live view; None: when stdout is a terminal that JSON lines do not use."""
    # Network outputs (avstream/outputs/network.py; README "Running unattended").
    mqtt: str | None = None
    """mqtt://[user:pass@]host[:port][/prefix], or None."""
    mqtt_hop_rate_hz: float = 0.0
    http: str | None = None
    """[HOST:]PORT for the page, /status, /metrics and /events, or None."""
    http_token: str | None = field(default=None, repr=False)
    name: str | None = None
    """This stream's name in topics, ids and metrics; None: the host name."""

    def sinks(self) -> tuple[list[Sink], bool]:
        """The sinks, and whether stdout is taken by JSON lines (print the summary elsewhere)."""
        sinks: list[Sink] = []
        stdout_taken = False
        if self.jsonl is not None:
            sink = JsonlSink(self.jsonl)
            stdout_taken = sink.to_stdout
            sinks.append(sink)
        view = self.view if self.view is not None else (sys.stdout.isatty() and not stdout_taken)
        if view and not stdout_taken:
            sinks.append(LiveView())
        sinks.extend(network_sinks(self.mqtt, self.mqtt_hop_rate_hz, self.http, self.http_token,
                                   self.name))
        sinks.extend(watchdog_sinks())  # systemd's READY/WATCHDOG/STOPPING, under Type=notify
        return sinks, stdout_taken


@contextmanager
def stop_on_signals(pipeline: Pipeline) -> Iterator[None]:
    """SIGINT / SIGTERM ask the pipeline to stop (it finishes the window in hand and returns a
    summary); a second SIGINT interrupts at once. Outside the main thread, nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        pipeline.stop()
        if count > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def drive(source: Source, engine: Engine, config: PipelineConfig, sinks: list[Sink],
          realtime: bool = False, clock: WallClock | None = None) -> RunSummary:
    """Run ``source`` to its end or to a stop signal.

    A recorded source runs ``fast`` (no wall clock: nothing is ever stale, output is
    repeatable) or, with ``realtime``, paced to the wall clock. A live source must come with the
    ``WallClock`` its capture threads stamp with: stale hops are judged against it.
    """
    if source.info.live:
        if clock is None:
            raise ValueError("a live source needs the WallClock its timestamps come from")
    elif realtime:
        clock = clock or WallClock()
    else:
        clock = None
    stop = threading.Event()
    if clock is not None and not source.info.live:
        source = PacedSource(source, clock, stop)
    pipeline = Pipeline(engine, config, sinks, clock=clock, stop=stop)
    with stop_on_signals(pipeline):
        summary = pipeline.run(source)
    check_long_enough(source.info, summary)
    return summary


def check_long_enough(info: SourceInfo, summary: RunSummary) -> None:
    """A recording that ended before its first window could close is an input error (one line),
    not an empty run."""
    c = summary.counters
    if (info.live or summary.windows or c.hops_dropped or c.windows_without_media
            or summary.stopped != "end of stream" or summary.info is None
            or summary.stream_start is None or summary.stream_end is None):
        return
    start, end, window = summary.stream_start, summary.stream_end, summary.info.window_s
    raise MediaError(f"{info.name}: the stream is {end - start:.2f} s long ({start:.2f}-"
                     f"{end:.2f} s), shorter than one window ({window:.2f} s); expected at least "
                     f"{window:.2f} s of audio or video")
