"""The window assembler on synthetic events: numpy only, no model, no runtime.

Each test builds its events in memory and checks the windows that come out: their times, their
own waveform (sample for sample), their frames, and the wait policy for a lagging modality.
One test proves the assembler's module tree imports neither onnxruntime nor torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avstream.bundle.format import StreamFormat
from avstream.sources.base import AudioBlock, Modality, ModalityLost, VideoFrame
from avstream.stream.assembly import ReadyWindow, WindowAssembler
from avstream.stream.config import PipelineConfig

REPO = Path(__file__).resolve().parents[1]
RATE = 8_000
BLOCK = 400  # 50 ms
FMT = StreamFormat(classes=("a", "b"), sample_rate=RATE, channels=2, window_samples=RATE,
                   window_ms=1000, frames_per_window=5, fps=5, frame_size=4, feature_dim=3,
                   audio_steps=(5, 3))


def ramp_block(start: int, n: int = BLOCK) -> AudioBlock:
    """Stereo samples whose value is their own index (left) and minus it (right)."""
    idx = np.arange(start, start + n, dtype=np.float32) / 1e5
    return AudioBlock(start / RATE, np.stack([idx, -idx]), RATE)


def frame(t: float, value: int) -> VideoFrame:
    return VideoFrame(t, np.full((8, 8, 3), value, dtype=np.uint8))


def interleaved(seconds: float, video_lead_s: float = 0.0) -> list:
    """Audio blocks and 10 fps frames in availability order, video shifted ahead by a lead."""
    events = []
    for i in range(round(seconds * RATE / BLOCK)):
        b = ramp_block(i * BLOCK)
        events.append((b.t_end, b))
    for k in range(round(seconds * 10)):
        events.append((k / 10 - video_lead_s, frame(k / 10, k)))
    return [e for _, e in sorted(events, key=lambda x: x[0])]


def feed_all(asm: WindowAssembler, events: list, finish: bool = True) -> list[ReadyWindow]:
    out: list[ReadyWindow] = []
    for e in events:
        out.extend(asm.feed(e))
    if finish:
        out.extend(asm.finish())
    return out


def test_windows_carry_their_own_waveform_and_frames() -> None:
    asm = WindowAssembler(FMT, PipelineConfig())
    ready = feed_all(asm, interleaved(3.0))
    assert [w.window.t_end for w in ready] == pytest.approx([1.0 + 0.2 * i for i in range(11)])
    for w in ready:
        end = round(w.window.t_end * RATE)
        expect = np.arange(end - RATE, end, dtype=np.float32) / 1e5
        np.testing.assert_array_equal(w.waveform[0], expect)
        np.testing.assert_array_equal(w.waveform[1], -expect)
        # Slots at t - 1 + 0.2 i sit on frames k / 10: the frame at the slot's own time.
        slots = [w.window.t_end - 1 + 0.2 * i for i in range(5)]
        assert [f.t for f in w.frames] == pytest.approx(slots)
        assert [int(f.image[0, 0, 0]) for f in w.frames] == [round(s * 10) for s in slots]
        assert f"{w.modalities}" == "('audio', 'video')"
    assert ready[0].waveform is not ready[1].waveform  # each window owns its samples
    # Frames are known before the windows that use them: offered once each, in time order.
    asm.reset()
    decided: list[float] = []
    for e in interleaved(3.0):
        asm.feed(e)
        decided.extend(f.t for f in asm.take_decided_frames())
    assert decided == sorted(set(decided)) and decided[:3] == pytest.approx([0.0, 0.2, 0.4])


def test_a_window_is_released_when_its_last_audio_sample_arrives() -> None:
    asm = WindowAssembler(FMT, PipelineConfig())
    events = interleaved(2.0)
    released_at = {}
    for e in events:
        for w in asm.feed(e):
            released_at[w.window.t_end] = e
    last = released_at[1.0]
    assert isinstance(last, AudioBlock) and last.t_end == pytest.approx(1.0)


def test_video_muxed_ahead_waits_for_the_audio_and_gives_the_same_windows() -> None:
    plain = feed_all(WindowAssembler(FMT, PipelineConfig()), interleaved(4.0))
    skewed = feed_all(WindowAssembler(FMT, PipelineConfig()), interleaved(4.0, video_lead_s=1.4))
    assert [w.window.index for w in skewed] == [w.window.index for w in plain]
    assert all(w.modalities == ("audio", "video") for w in skewed)
    for a, b in zip(plain, skewed, strict=True):
        np.testing.assert_array_equal(a.waveform, b.waveform)
        assert [f.t for f in a.frames] == [f.t for f in b.frames]


def test_a_lost_camera_gives_audio_only_windows_after_the_wait() -> None:
    asm = WindowAssembler(FMT, PipelineConfig(max_wait_s=0.5))
    events = [e for e in interleaved(4.0) if not (isinstance(e, VideoFrame) and e.t > 1.5)]
    at = next(i for i, e in enumerate(events) if isinstance(e, AudioBlock) and e.t_start > 1.6)
    events.insert(at, ModalityLost(Modality.VIDEO, 1.6, "unplugged"))
    ready = feed_all(asm, events)
    by_t = {round(w.window.t_end, 3): w for w in ready}
    assert by_t[1.6].modalities == ("audio", "video")
    assert by_t[3.0].modalities == ("audio",) and by_t[3.0].frames is None
    assert len(ready) == 16


def test_no_media_at_all_is_counted_not_released() -> None:
    asm = WindowAssembler(FMT, PipelineConfig())
    ready = feed_all(asm, [ramp_block(i * BLOCK) for i in range(30)]
                     + [ramp_block(RATE * 5 + i * BLOCK) for i in range(30)])
    assert all(w.modalities == ("audio",) for w in ready)
    assert asm.windows_without_media > 0
    asm.reset()
    assert asm.windows_without_media == 0 and feed_all(asm, [], finish=True) == []


def test_the_assembler_imports_neither_onnxruntime_nor_torch() -> None:
    code = ("import sys, json, avstream.stream.assembly, avstream.stream.features, avstream.sources.paced\n"
            "print(json.dumps([m for m in ('onnxruntime', 'torch') if m in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       check=True)
    assert json.loads(r.stdout) == []
