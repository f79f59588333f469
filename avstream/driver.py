"""Running a stream: open the model, pick the clock and the outputs, stop on signals.

``drive`` is the one way a source is run (``replay``, ``live``, ``demo``, each ``serve`` stream,
``batch``, the soak bench and the tests call it); ``run_command`` is the one recipe of the
commands around it (signals from the first step, start-up lines, the summary), so that the
commands only parse options, call it and print what is theirs. Pacing is decided here, never in
the inference path: ``fast`` feeds the file as quickly as it decodes, ``realtime`` releases it at
the wall-clock pace of capture (``PacedSource``), and a live source paces itself.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Literal, TextIO, cast

from avstream.bundle.loader import load_bundle
from avstream.bundle.schema import AUTO
from avstream.errors import AvstreamError, DeviceError, MediaError
from avstream.inference.api import EngineLike
from avstream.inference.engine import Engine
from avstream.inference.session import SessionConfig
from avstream.outputs.history import DEFAULT_DAYS, DEFAULT_MAX_MB, HistoryConfig, HistorySink
from avstream.outputs.jsonl import DEFAULT_KEEP, STDOUT, JsonlSink, Rotation, parse_rotation
from avstream.outputs.live_view import LiveView
from avstream.outputs.network import describe, network_sinks, stream_name
from avstream.outputs.stats import OutputStats
from avstream.outputs.watchdog import watchdog_sinks
from avstream.results.records import providers_line
from avstream.results.sink import Sink
from avstream.results.summary import RunSummary
from avstream.sources.base import Source, SourceInfo
from avstream.sources.paced import PacedSource
from avstream.stream.clock import WallClock
from avstream.stream.pipeline import Pipeline, PipelineConfig
from avstream.stream.smoothing import SmoothingConfig
from avstream.stream.windows import hop_ms_from_seconds

Pace = Literal["fast", "realtime", "live"]
log = logging.getLogger(__name__)


def open_engine(model: str | Path, provider: str | None = None, threads: int = 0,
                precision: str = AUTO) -> Engine:
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
    jsonl_rotate: str | None = None
    """A size (100MB) or 'daily' (avstream/outputs/jsonl.py), or None: one file."""
    jsonl_keep: int = DEFAULT_KEEP
    history: str | None = None
    """SQLite file of label changes and minutes (avstream/outputs/history.py), or None."""
    history_days: float = DEFAULT_DAYS
    history_max_mb: float = DEFAULT_MAX_MB

    def rotation(self) -> Rotation | None:
        if self.jsonl_rotate is None:
            return None
        if self.jsonl is None or self.jsonl == STDOUT:
            raise AvstreamError(f"--jsonl-rotate {self.jsonl_rotate} without a --jsonl file; "
                                f"expected --jsonl PATH as well")
        return parse_rotation(self.jsonl_rotate, self.jsonl_keep)

    def history_config(self) -> HistoryConfig | None:
        if self.history is None:
            return None
        check_writable("--history", Path(self.history), "a writable file path")
        return HistoryConfig(Path(self.history), self.history_days, self.history_max_mb)

    def check(self) -> None:
        """Every output option checked, nothing opened or started: the commands call this
        before the model loads, so that a mistake in one costs no wait (one line, exit 2)."""
        if self.jsonl is not None and self.jsonl != STDOUT:
            check_writable("--jsonl", Path(self.jsonl), "a writable file path or '-' for stdout")
        self.rotation()
        self.history_config()
        if self.mqtt is None and self.http is None:
            return
        name = stream_name(self.name)
        if self.mqtt is not None:
            from avstream.outputs.mqtt import parse_mqtt_url

            parse_mqtt_url(self.mqtt, name, self.mqtt_hop_rate_hz)
        if self.http is not None:
            from avstream.outputs.http import parse_http_address

            parse_http_address(self.http, name, self.http_token)

    def sinks(self, stats: OutputStats | None = None) -> tuple[list[Sink], bool]:
        """The sinks, and whether stdout is taken by JSON lines (print the summary elsewhere);
        their counters go to ``stats`` (serve's site page shows them) or to a new one."""
        sinks: list[Sink] = []
        stdout_taken = False
        if self.jsonl is not None:
            sink = JsonlSink(self.jsonl, self.rotation())
            stdout_taken = sink.to_stdout
            sinks.append(sink)
        view = self.view if self.view is not None else (sys.stdout.isatty() and not stdout_taken)
        if view and not stdout_taken:
            sinks.append(LiveView())
        stats = stats if stats is not None else OutputStats()
        history = self.history_config()
        if history is not None:
            sinks.append(HistorySink(history, stream_name(self.name), stats))
        sinks.extend(network_sinks(self.mqtt, self.mqtt_hop_rate_hz, self.http, self.http_token,
                                   self.name, stats, history=self.history))
        sinks.extend(watchdog_sinks())  # systemd's READY/WATCHDOG/STOPPING, under Type=notify
        return sinks, stdout_taken


def check_writable(option: str, path: Path, expected: str) -> None:
    """``path`` can be created or overwritten (its folder exists, it is not a folder), checked
    without creating it; AvstreamError naming ``option`` otherwise."""
    if path.is_dir():
        reason = "it is a folder"
    elif not path.parent.is_dir():
        reason = "No such file or directory"
    elif not os.access(path if path.exists() else path.parent, os.W_OK):
        reason = "Permission denied"
    else:
        return
    raise AvstreamError(f"{option} {path} cannot be written ({reason}); expected {expected}")


@contextmanager
def stop_on_signals(stop: threading.Event, interrupt: bool = True) -> Iterator[threading.Event]:
    """SIGINT / SIGTERM set ``stop``: a run finishes the window in hand and returns its summary;
    one that has not begun (the model loading, the devices opening) does not begin. With
    ``interrupt``, a second SIGINT interrupts at once. Outside the main thread nothing is
    installed (signals only reach the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    count = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        stop.set()
        if interrupt and count > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def pace_of(source: Source, realtime: bool) -> Pace:
    """``live`` for a source that paces itself, else ``realtime`` or ``fast`` as asked."""
    return "live" if source.info.live else ("realtime" if realtime else "fast")


def drive(source: Source, engine: EngineLike, config: PipelineConfig, sinks: Sequence[Sink],
          realtime: bool = False, stop: threading.Event | None = None) -> RunSummary:
    """Run ``source`` to its end or until ``stop`` is set: the one place that picks the clock.

    A recorded source runs ``fast`` (no wall clock: nothing is ever stale, output is
    repeatable) or, with ``realtime``, paced to a new wall clock (``PacedSource``). A live
    source runs on the ``WallClock`` its capture threads stamp with (``Source.clock``): stale
    hops are judged against it.
    """
    pace = pace_of(source, realtime)
    clock: WallClock | None = None
    if pace == "live":
        clock = source.clock
        if clock is None:
            raise ValueError("a live source needs the WallClock its timestamps come from")
    stop = stop if stop is not None else threading.Event()
    if pace == "realtime":
        clock = WallClock()
        source = PacedSource(source, clock, stop)
    summary = Pipeline(engine, config, sinks, clock=clock, stop=stop).run(source)
    check_long_enough(source.info, summary)
    return summary


@dataclass(frozen=True)
class CommandRun:
    """What ``run_command`` leaves its command: the summary and where it was printed."""

    summary: RunSummary
    out: TextIO
    """stdout, or stderr when JSON lines took stdout: the command's last lines go here too."""


def run_command(prefix: str, source: Source | Callable[[], Source],
                load_engine: Callable[[], Engine], config: PipelineConfig, outputs: Outputs,
                headline: Callable[[SourceInfo, Engine, Pace], Sequence[str]],
                realtime: bool = False, extra_sinks: Sequence[Sink] = ()) -> CommandRun | None:
    """The one recipe of ``replay``, ``live`` and ``demo``, after their options are checked.

    Under one signal context from the first step (a stop while the model loads or the devices
    open ends the command with exit 0 and no run): the model, the source (``source``, or what
    it returns when it is a function: devices open once the model is ready) and the outputs are
    opened; the start-up lines (``headline``, then one per network output) go to stderr
    prefixed by ``prefix``; the stream is driven; the summary is printed to stdout, or to stderr
    when JSON lines take stdout. A source that ended because its devices failed
    (``Source.failure``) raises DeviceError after the summary. None when stopped before the run.
    """
    with stop_on_signals(threading.Event()) as stop:
        opened: Source | None = None if callable(source) else source
        try:
            engine = load_engine()
            if opened is None:
                opened = cast(Callable[[], Source], source)()
            sinks, stdout_taken = outputs.sinks()
        except BaseException:
            if opened is not None:
                opened.close()
            raise
        for line in (*headline(opened.info, engine, pace_of(opened, realtime)), *describe(sinks)):
            print(f"{prefix}: {line}", file=sys.stderr)
        if stop.is_set():
            opened.close()
            print(f"{prefix}: stopped before the stream began; no windows", file=sys.stderr)
            return None
        summary = drive(opened, engine, config, [*sinks, *extra_sinks], realtime, stop)
    out = sys.stderr if stdout_taken else sys.stdout
    print(summary.render_text(), file=out)
    out.flush()
    if opened.failure is not None:
        raise DeviceError(opened.failure)
    return CommandRun(summary, out)


def engine_line(engine: Engine) -> str:
    """``on <providers that really run>, <precision>``: the start-up lines' account of the model."""
    return f"on {providers_line(engine.providers)}, {engine.precision}"


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
