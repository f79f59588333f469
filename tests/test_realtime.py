"""Real-time replay of a recording muxed the way real files are: no hop may be dropped while the
engine is idle.

The demo recording (and real phone/camera files) carry video packets up to ~1.35 s ahead of
the audio of the same instant. A replay paced in container order held the audio back behind
those frames and then released it in a burst, and the pipeline dropped every window of that
burst as "stale" although inference was far ahead (163 of 596 hops in the demo).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from crafted_media import frame_times, write_crafted
from replay_helpers import replay

SKEWED_SCENES = ["park", "metro"]
SKEWED_SECONDS_PER_SCENE = 15.0
"""The demo's scene length: the synthetic writer then muxes video ~1.3 s ahead of the audio."""
SKEW_PRECONDITION_S = 1.0


def video_lead_s(path: Path) -> float:
    """Largest amount by which a video packet is muxed ahead of the audio already written."""
    audio_end, lead = 0.0, 0.0
    with av.open(str(path)) as c:
        for p in c.demux():
            if p.pts is None:
                continue
            t = float(p.pts * p.time_base)
            if p.stream.type == "audio":
                audio_end = max(audio_end, t + float((p.duration or 0) * p.time_base))
            else:
                lead = max(lead, t - audio_end)
    return lead


@pytest.fixture(scope="module")
def skewed_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.synth.stream import write_synthetic_stream

    mp4 = tmp_path_factory.mktemp("skew") / "skewed.mp4"
    write_synthetic_stream(mp4, SKEWED_SCENES, seconds_per_scene=SKEWED_SECONDS_PER_SCENE, seed=3)
    return mp4


def test_realtime_replay_of_a_skewed_recording_drops_no_hop(tiny_engine, skewed_recording: Path) -> None:
    assert video_lead_s(skewed_recording) > SKEW_PRECONDITION_S, "the recording lost its skew"
    fast = replay(tiny_engine, skewed_recording)
    paced = replay(tiny_engine, skewed_recording, realtime=True)
    c = paced.summary.counters
    assert c.hops_dropped == 0, f"{c.hops_dropped} of {len(fast.records)} hops dropped"
    assert [r.window for r in paced.records] == [r.window for r in fast.records]
    # Every window ran on both modalities, as in the fast replay, with the same probabilities.
    assert [r.modalities for r in paced.records] == [r.modalities for r in fast.records]
    assert [r.raw_label for r in paced.records] == [r.raw_label for r in fast.records]


FAR_LEAD_S = 8.0
"""Video muxed this far ahead of its audio: far more than a window waits for a lagging modality
(``max_wait_s``), so a source that hands events over in file order leaves the windows without
their audio."""
FAR_SECONDS = 12.0
FAR_FPS = 5


def test_a_recording_with_video_muxed_far_ahead_gives_the_labels_of_an_interleaved_one(
        tiny_engine, tmp_path: Path) -> None:
    frames = frame_times(0.0, FAR_SECONDS, FAR_FPS)
    interleaved = write_crafted(tmp_path / "interleaved.mkv", audio=[(0.0, FAR_SECONDS)],
                                frames=frames)
    ahead = write_crafted(tmp_path / "ahead.mkv", audio=[(0.0, FAR_SECONDS)], frames=frames,
                          video_lead_s=FAR_LEAD_S)
    assert video_lead_s(ahead) > FAR_LEAD_S - 1.0, "the file lost its skew"
    assert video_lead_s(interleaved) < 0.5
    want, got = replay(tiny_engine, interleaved), replay(tiny_engine, ahead)
    c = got.summary.counters
    assert c.frames_overflowed == 0, f"{c.frames_overflowed} chosen frames evicted"
    assert len(got.records) == len(want.records) > 0
    assert [r.modalities for r in got.records] == [r.modalities for r in want.records]
    assert [r.raw_label for r in got.records] == [r.raw_label for r in want.records]
    assert all(np.array_equal(g.raw_probs, w.raw_probs) for g, w in zip(got.records, want.records, strict=True))
