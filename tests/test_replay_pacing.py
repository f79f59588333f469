"""Clocks and pacing: which windows a run keeps and which it drops, and why.

A window is dropped only when inference is behind (README: counters); a paced replay goes
through the same windows as a fast one; any source, and a modality that comes and goes, runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from replay_helpers import Collect, replay, write_media

from avstream.driver import drive
from avstream.inference.engine import Engine
from avstream.results.records import HopRecord
from avstream.sources.base import (
    AudioBlock,
    FramesDropped,
    Idle,
    Modality,
    ModalityLost,
    ModalityRestored,
    SamplesDropped,
    Source,
    SourceEvent,
    SourceInfo,
    VideoFrame,
    available_at,
)
from avstream.sources.media_file import MediaFileSource
from avstream.sources.paced import PacedSource
from avstream.stream.clock import WallClock
from avstream.stream.pipeline import Pipeline, PipelineConfig


def test_realtime_goes_through_the_same_windows(tiny_engine: Engine, tmp_path: Path) -> None:
    clip = write_media(tmp_path / "short.mp4", seconds=2.0)
    fast = replay(tiny_engine, clip)
    paced = replay(tiny_engine, clip, realtime=True)
    assert paced.info.paced == "realtime"
    assert all("lag" in r.latency_ms for r in paced.records)
    got = [r.t for r in paced.records]
    assert set(got) <= {r.t for r in fast.records}
    assert len(got) + paced.summary.counters.hops_dropped == len(fast.records)


class LateClock:
    """A wall clock that says every window is long past."""

    def now(self) -> float:
        return 1e9


class QueuedSource(Source):
    """A file's events, decoded beforehand and handed over at once: all were queued while the
    pipeline was busy (with the clock above: since long ago)."""

    def __init__(self, media: Path) -> None:
        inner = MediaFileSource(media)
        self._info = inner.info
        self._events = list(inner.events())
        inner.close()

    @property
    def info(self) -> SourceInfo:
        return self._info

    def events(self) -> Iterator[SourceEvent]:
        yield from self._events

    def close(self) -> None:
        pass


def test_stale_hops_are_dropped_and_counted(tiny_engine: Engine, av_file: Path) -> None:
    sink = Collect()
    config = PipelineConfig(pipelined=False)
    pipeline = Pipeline(tiny_engine, config, [sink], clock=LateClock())  # type: ignore[arg-type]
    summary = pipeline.run(QueuedSource(av_file))
    assert sink.records == []
    assert summary.counters.hops_dropped == 11
    assert summary.counters.windows_late_media == 0  # the media was not late: the engine was
    assert summary.counters.frames_encoded == 0  # a dropped hop costs no inference
    assert summary.frame_encodes == 0  # nor, synchronous, any frame encode


class SlowEngine:
    """The tiny engine, taking ``seconds`` per window: inference really behind."""

    def __init__(self, engine: Engine, seconds: float) -> None:
        self._engine, self._seconds = engine, seconds
        self.format, self.providers, self.precision = engine.format, engine.providers, engine.precision
        self.encode_frames = engine.encode_frames
        self.infer_batch = engine.infer_batch

    def infer(self, waveform, features):  # noqa: ANN001, ANN201
        time.sleep(self._seconds)
        return self._engine.infer(waveform, features)


def test_an_engine_slower_than_the_hop_drops_hops_a_fast_one_none(
        tiny_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clip = write_media(tmp_path / "slow.mp4", seconds=3.0)
    slow = Collect()
    with caplog.at_level(logging.WARNING, logger="avstream.stream.arrivals"):
        drive(MediaFileSource(clip), SlowEngine(tiny_engine, 0.45), PipelineConfig(), [slow],
              realtime=True)
    c = slow.summary.counters
    assert c.hops_dropped >= 4  # 0.45 s per 0.2-s hop: about every other hop must go
    assert c.windows + c.hops_dropped == 11
    assert max(r.latency_ms["delay"] for r in slow.records) < 450 + 200 + 100
    # Said once, with what would help, however many windows go.
    behind = [r.getMessage() for r in caplog.records if "inference is behind" in r.getMessage()]
    assert len(behind) == 1 and "--precision int8" in behind[0], behind
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="avstream.stream.arrivals"):
        fast = replay(tiny_engine, clip, realtime=True)
    assert fast.summary.counters.hops_dropped == 0 and len(fast.records) == 11
    assert fast.summary.counters.windows_late_media == 0
    assert not [r for r in caplog.records if "inference is behind" in r.getMessage()]


LATE_S = 0.5
"""How long after it was available each event of ``LateSource`` reaches the pipeline."""


class LateSource(Source):
    """A realtime replay whose media reaches the pipeline ``LATE_S`` after it was available (a
    camera behind a slow link): each event is handed over late, not queued while the pipeline
    was busy, so its arrival is the moment it was handed over."""

    def __init__(self, inner: PacedSource, clock: WallClock) -> None:
        self._inner, self._clock = inner, clock

    @property
    def info(self) -> SourceInfo:
        return self._inner.info

    def events(self) -> Iterator[SourceEvent]:
        for event in self._inner.events():
            at = available_at(event)
            if at is not None:
                self._clock.sleep_until(at + LATE_S)
            yield event

    def close(self) -> None:
        self._inner.close()


def test_late_media_in_a_realtime_replay_runs_every_window_and_is_counted_not_dropped(
        tiny_engine: Engine, tmp_path: Path) -> None:
    clip = write_media(tmp_path / "late.mp4", seconds=2.0)
    fast = replay(tiny_engine, clip)
    clock = WallClock()
    sink = Collect()
    late = LateSource(PacedSource(MediaFileSource(clip), clock), clock)
    summary = Pipeline(tiny_engine, PipelineConfig(), [sink], clock=clock).run(late)
    assert summary.info.paced == "realtime"
    c = summary.counters
    assert [r.t for r in sink.records] == [r.t for r in fast.records]  # every window ran
    assert c.hops_dropped == 0  # the engine was idle: dropping would only lose labels
    assert c.windows_late_media >= len(sink.records) // 2 > 0


class ScriptedSource(Source):
    """A live-like source built in memory: 22.05 kHz stereo blocks, 7 fps frames, a camera that
    goes away for a while, overflows and idle ticks."""

    def __init__(self) -> None:
        self.closed = False

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(name="scripted", has_audio=True, has_video=True, live=False,
                          audio_rate_hz=22_050, audio_channels=2, video_width=64,
                          video_height=48, video_fps=7.0)

    def events(self) -> Iterator[SourceEvent]:
        rng = np.random.default_rng(5)
        rate, block = 22_050, 512
        t_audio, k = 0.0, 0
        lost = dropped = False
        while t_audio < 6.0:
            n = block
            yield AudioBlock(t_audio, (0.1 * rng.standard_normal((2, n))).astype(np.float32), rate)
            t_audio += n / rate
            while k / 7.0 <= t_audio:
                t = k / 7.0
                if 2.0 <= t < 4.0:
                    if not lost:
                        yield ModalityLost(Modality.VIDEO, t, "camera unplugged")
                        lost = True
                else:
                    if lost:
                        yield ModalityRestored(Modality.VIDEO, t)
                        lost = False
                    yield VideoFrame(t, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
                k += 1
            if k == 10 and not dropped:
                dropped = True
                yield SamplesDropped(t_audio, 256, rate)
                yield FramesDropped(t_audio, 2)
                yield Idle(t_audio)

    def close(self) -> None:
        self.closed = True


def test_any_source_and_a_modality_that_comes_and_goes(tiny_engine: Engine) -> None:
    sink = Collect()
    source = ScriptedSource()
    summary = Pipeline(tiny_engine, PipelineConfig(), [sink]).run(source)
    by_t = {round(r.t, 3): r.modalities for r in sink.records}
    assert by_t[1.8] == ("audio", "video")
    assert by_t[3.0] == ("audio",) and by_t[4.0] == ("audio",)
    assert by_t[5.4] == ("audio", "video")
    assert by_t[6.2] == ("video",)  # the audio ended at 6.0 s, the last frame is at 6.0 s
    c = summary.counters
    assert c.modality_changes == 3
    assert c.audio_overflows == 1 and c.audio_samples_dropped == 256 and c.frames_skipped == 2
    assert source.closed


def test_stop_ends_the_run_with_a_summary(tiny_engine: Engine, av_file: Path) -> None:
    sink = Collect()
    pipeline = Pipeline(tiny_engine, PipelineConfig(), [sink])

    class StopAfterThree(Collect):
        def hop(self, record: HopRecord) -> None:
            super().hop(record)
            if len(self.records) == 3:
                pipeline.stop()

    stopper = StopAfterThree()
    pipeline.reporter.sinks = (stopper,)
    summary = pipeline.run(MediaFileSource(av_file))
    assert summary.stopped == "stop request"
    assert 3 <= summary.windows < 11
    assert stopper.summary is summary
