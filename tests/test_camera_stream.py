"""A network camera's own sound and pictures (``--mic camera``), aligned by the stream's clock.

ffmpeg serves the suite's recording, audio and video, as MPEG-TS over UDP on loopback: an IP
camera with a microphone. The daemon's live source reads both tracks from that one stream. It
must follow the scenes in order (no third scene between two: sound and pictures of the same
moment are paired), fuse both modalities, survive the stream being killed and started again
(both modalities lost, then restored, under a new clock mapping since the sender's timestamps
restart), and say once that a stream without sound runs video-only.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from avstream.bundle.loader import load_bundle
from avstream.commands.live import _audio_line
from avstream.driver import open_engine
from avstream.results.records import HopRecord
from avstream.scenes import UNKNOWN
from avstream.sources.base import Modality, SourceInfo
from avstream.sources.live import LiveOptions, LiveSource
from avstream.sources.stream_av import CameraStreamSource, PtsClock
from avstream.stream.pipeline import Pipeline, PipelineConfig
from avstream.truth import read_truth_csv
from tests.live_env import (
    camera_url,
    free_udp_port,
    kill_group,
    require_camera_stack,
    serve_camera,
    start_daemon,
)

START_S = 4.0  # 4 s into the first scene: then two changes, 8 s apart
FIRST_PART_S = 14.0
GAP_S = 2.5
SECOND_PART_S = 7.0
RUN_LIMIT_S = 60.0


class Keep:
    """Records and losses as the pipeline reports them."""

    def __init__(self) -> None:
        self.records: list[HopRecord] = []

    def start(self, info) -> None:  # noqa: ANN001 - RunInfo
        pass

    def hop(self, record: HopRecord) -> None:
        self.records.append(record)

    def end(self, summary) -> None:  # noqa: ANN001 - RunSummary
        pass

    def close(self) -> None:
        pass


def scene_runs(labels: list[str]) -> list[str]:
    """Consecutive equal labels collapsed, `unknown` left out."""
    runs: list[str] = []
    for label in labels:
        if label != UNKNOWN and (not runs or runs[-1] != label):
            runs.append(label)
    return runs


def test_pts_clock_places_both_tracks_by_the_fastest_packet_and_restarts_on_a_jump_back() -> None:
    clock = PtsClock()
    assert clock.place(10.0, 100.5) == 100.5        # first packet: offset 90.5
    assert clock.place(10.2, 101.9) == pytest.approx(100.7)  # held up 1.2 s: not moved later
    assert clock.place(10.4, 100.8) == pytest.approx(100.8)  # faster path: offset now 90.4
    assert clock.place(10.0, 101.0) == pytest.approx(100.4)  # the other track, same instant
    assert clock.place(0.5, 200.0) == 200.0                  # sender restarted: new mapping


def test_the_start_up_line_says_camera_audio_because_the_source_declares_it(
        tiny_bundle: Path) -> None:
    """The camera stream declares its audio as its own track (``SourceInfo.camera_audio``);
    a microphone is described as one whatever its device is called."""
    spec = load_bundle(tiny_bundle).format
    stream = CameraStreamSource("udp://127.0.0.1:9", time.monotonic, threading.Event())
    assert stream.info().camera_audio and stream.info().audio_rate_hz is None  # not opened
    assert _audio_line(stream.info(), spec) == (
        "audio: the camera stream's own track, not open yet (reconnecting)")
    mic = SourceInfo(name="microphone 'HDMI audio and video capture'", has_audio=True,
                     has_video=False, live=True, audio_rate_hz=44_100, audio_channels=1)
    line = _audio_line(mic, spec)
    assert line.startswith("audio: 44100 Hz 1 ch -> ") and "camera" not in line, line


@pytest.mark.live
def test_camera_audio_follows_scenes_in_order_and_survives_the_stream_restarting(
        trained_bundle: Path, synth_stream: tuple[Path, Path]) -> None:
    require_camera_stack()
    media, truth_csv = synth_stream
    truth = [i.scene for i in read_truth_csv(truth_csv)]
    port = free_udp_port()
    engine = open_engine(trained_bundle)
    sender = serve_camera(media, port, FIRST_PART_S, start_s=START_S, audio=True)
    source = LiveSource(LiveOptions(mic="camera", camera=camera_url(port)))
    keep = Keep()
    pipeline = Pipeline(engine, PipelineConfig(), [keep], clock=source.clock)
    try:
        info = source.open()
        assert info.audio_rate_hz == 48_000 and info.audio_channels == 2
        runner = threading.Thread(target=pipeline.run, args=(source,), daemon=True)
        runner.start()
        sender.wait(FIRST_PART_S + 10)
        first_part = len(keep.records)
        time.sleep(GAP_S)
        sender = serve_camera(media, port, SECOND_PART_S, start_s=START_S + FIRST_PART_S + GAP_S,
                              audio=True)
        sender.wait(SECOND_PART_S + 10)
    finally:
        kill_group(sender)
        source.close()
    runner.join(RUN_LIMIT_S)
    assert not runner.is_alive()
    records = keep.records
    before = records[:first_part]
    fused = [r for r in before if set(r.modalities) == {Modality.AUDIO, Modality.VIDEO}]
    assert len(fused) >= 0.8 * len(before) > 40
    # Three scenes, in the order they were played, and no other scene between them.
    played = truth[0:3]
    assert scene_runs([r.label for r in fused]) == played
    # After the restart both modalities come back, fused, under a new clock mapping.
    after = [r for r in records[first_part:] if set(r.modalities) == {Modality.AUDIO, Modality.VIDEO}]
    assert len(after) > 10
    assert after[-1].label in (truth[2], truth[3])


@pytest.mark.live
def test_a_camera_stream_without_sound_runs_video_only_and_says_so_once(
        trained_bundle: Path, synth_stream: tuple[Path, Path]) -> None:
    require_camera_stack()
    media, _ = synth_stream
    port = free_udp_port()
    engine = open_engine(trained_bundle)
    sender = serve_camera(media, port, 5.0, audio=False)
    source = LiveSource(LiveOptions(mic="camera", camera=camera_url(port)))
    keep = Keep()
    pipeline = Pipeline(engine, PipelineConfig(), [keep], clock=source.clock)
    try:
        source.open()
        runner = threading.Thread(target=pipeline.run, args=(source,), daemon=True)
        runner.start()
        sender.wait(15)
    finally:
        kill_group(sender)
        source.close()
    runner.join(RUN_LIMIT_S)
    assert keep.records
    assert all(list(r.modalities) == [Modality.VIDEO] for r in keep.records)


@pytest.mark.live
def test_live_mic_camera_from_the_command_line(trained_bundle: Path, synth_stream: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    """`avstream live --mic camera --camera URL`, as a user runs it: both modalities from the one
    stream, said on the start-up lines, no PortAudio involved."""
    require_camera_stack()
    media, _ = synth_stream
    port = free_udp_port()
    sender = serve_camera(media, port, 12.0, audio=True)
    daemon = start_daemon(["--model", str(trained_bundle), "--mic", "camera", "--camera",
                           camera_url(port), "--jsonl", "-", "--no-view"],
                          env=dict(os.environ), workdir=tmp_path, max_seconds=RUN_LIMIT_S)
    try:
        assert daemon.wait_for_stdout_count('"modalities":["audio","video"]', 10, 40.0), (
            daemon.stderr_text()[-3000:])
        rc = daemon.stop(signal.SIGTERM)
    finally:
        kill_group(sender)
        kill_group(daemon.proc)
    stderr = daemon.stderr_text()
    assert rc == 0, stderr[-3000:]
    assert "audio: the camera stream's own track, 48000 Hz 2 ch" in stderr, stderr[:3000]
    assert "aligned by the stream's own timestamps" in stderr, stderr[:3000]


@pytest.mark.live
@pytest.mark.parametrize("delay_s", [0.0, 0.5])
def test_an_opened_camera_is_said_opened_and_never_also_not_opened(
        synth_stream: tuple[Path, Path], delay_s: float) -> None:
    """The start-up details of a camera that opened say so once; the "did not open" line is for
    a camera that did not (it was once printed for every opened camera run without
    --video-delay)."""
    require_camera_stack()
    media, _ = synth_stream
    port = free_udp_port()
    sender = serve_camera(media, port, 10.0)
    source = LiveSource(LiveOptions(use_mic=False, camera=camera_url(port), video_delay_s=delay_s))
    try:
        info = source.open()
    finally:
        source.close()
        kill_group(sender)
    said = "\n".join(info.details)
    assert "opened (" in said, said
    assert "did not open" not in said, said
    assert ("--video-delay" in said) == (delay_s > 0), said
