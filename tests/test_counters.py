"""Counts: each stage keeps its own, the reporter merges them once, and ``frames_encoded`` has
one meaning in a line and in the summary (the frames the windows that ran used), apart from the
summary's ``frame_encodes`` (every run of the frame graph)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from crafted_media import frame_times, write_crafted
from replay_helpers import Collect

from avstream.inference.api import InferenceResult
from avstream.inference.engine import Engine
from avstream.results.counters import Counters, ReporterCounts, counters_of
from avstream.sources.media_file import MediaFileSource
from avstream.stream.arrivals import ArrivalCounts
from avstream.stream.assembly import AssemblyCounts
from avstream.stream.pipeline import Pipeline, PipelineConfig

STAGES = (AssemblyCounts, ArrivalCounts, ReporterCounts)


def names(record: type) -> list[str]:
    return [f.name for f in dataclasses.fields(record)]


def test_every_counter_is_counted_by_exactly_one_stage() -> None:
    counted = [name for stage in STAGES for name in names(stage)]
    assert sorted(counted) == sorted(names(Counters))
    assert len(counted) == len(set(counted))
    merged = counters_of(AssemblyCounts(audio_gaps=2), ArrivalCounts(hops_dropped=3),
                         ReporterCounts(windows=4))
    assert merged.to_dict() == {**Counters().to_dict(), "audio_gaps": 2, "hops_dropped": 3,
                                "windows": 4}
    assert list(merged.to_dict()) == names(Counters)  # a line's key order is Counters' own


class LateClock:
    """A wall clock that says every window is long past: each one is dropped."""

    def now(self) -> float:
        return 1e9


def test_frames_encoded_ahead_for_dropped_windows_are_encodes_not_frames_used(
        tiny_engine: Engine, av_file: Path) -> None:
    sink = Collect()
    pipeline = Pipeline(tiny_engine, PipelineConfig(pipelined=True), [sink],
                        clock=LateClock())  # type: ignore[arg-type]
    source = MediaFileSource(av_file)
    pipeline.start(source.info)
    for event in source.events():
        pipeline.feed(event)
        pipeline.features.settle()  # the encoder keeps up: every frame known is encoded ahead
    pipeline.finish()
    source.close()
    summary = pipeline.summary()
    pipeline.features.close()
    assert sink.records == [] and summary.counters.hops_dropped == 11
    # No window ran, so none used a frame; the encoder still ran the frames it was given.
    assert summary.counters.frames_encoded == 0
    assert summary.frame_encodes == pipeline.features.counts().encoded > 0
    assert summary.to_dict()["frame_encodes"] == summary.frame_encodes


@pytest.mark.parametrize("pipelined", [False, True])
def test_the_summary_counts_the_frames_the_lines_count(tiny_engine: Engine, av_file: Path,
                                                        pipelined: bool) -> None:
    sink = Collect()
    pipeline = Pipeline(tiny_engine, PipelineConfig(pipelined=pipelined), [sink])
    summary = pipeline.run(MediaFileSource(av_file))
    last = sink.records[-1].counters
    assert summary.counters.frames_encoded == last.frames_encoded == sum(
        r.frames_encoded for r in sink.records) == pipeline.reporter.counts().frames_encoded
    assert summary.frame_encodes >= summary.counters.frames_encoded


class NanWithVideo:
    """The tiny engine, whose output is NaN for every window that has video (a model fault)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.format, self.providers, self.precision = engine.format, engine.providers, engine.precision
        self.encode_frames = engine.encode_frames
        self.infer_batch = engine.infer_batch

    def infer(self, waveform: np.ndarray | None, features: np.ndarray | None) -> InferenceResult:
        r = self._engine.infer(waveform, features)
        if features is None:
            return r
        return InferenceResult(np.full_like(r.probs, np.nan), r.branch, r.latency_ms)


def test_windows_with_invalid_output_used_their_frames_in_lines_and_summary(
        tiny_engine: Engine, tmp_path: Path) -> None:
    # Audio 0-4 s, video 0-2 s: the fused windows give NaN (no line), the audio-only ones run.
    media = write_crafted(tmp_path / "video_ends.mkv", audio=[(0.0, 4.0)],
                          frames=frame_times(0.0, 2.0, 10))
    sink = Collect()
    engine = NanWithVideo(tiny_engine)
    summary = Pipeline(engine, PipelineConfig(pipelined=False), [sink]).run(  # type: ignore[arg-type]
        MediaFileSource(media))
    assert sink.records and all(r.modalities == ("audio",) for r in sink.records)
    assert summary.counters.windows_invalid > 0
    used = sink.records[-1].counters.frames_encoded
    assert used == summary.counters.frames_encoded == summary.counters.frames_sampled > 0
    assert summary.frame_encodes == used  # synchronous: each frame encoded once, on its turn
