"""The bounded stores between source and windows, and the audio conformer in front of them."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from avstream.media.audio import to_stereo
from avstream.media.frames import resize_frame
from avstream.sources.base import AudioBlock, VideoFrame
from avstream.stream.buffers import AudioRing, FrameStore
from avstream.stream.conform import AudioConformer
from avstream.stream.windows import SlotGrid, WindowSpec


def ramp(channels: int, start: int, n: int) -> np.ndarray:
    """Samples whose value is their absolute index: any misplacement shows."""
    row = np.arange(start, start + n, dtype=np.float32)
    return np.tile(row, (channels, 1)) * np.array([[1.0], [-1.0]][:channels], dtype=np.float32)


# ------------------------------------------------------------------ AudioRing


def test_ring_reads_back_exact_samples_across_the_wrap() -> None:
    ring = AudioRing(channels=2, capacity=100, max_fill=0)
    pos = 0
    for n in (30, 30, 30, 30, 17):  # 137 samples: the ring has wrapped
        ring.write(pos, ramp(2, pos, n))
        pos += n
    out = np.empty((2, 60), dtype=np.float32)
    ring.read_into(pos - 60, out)
    np.testing.assert_array_equal(out, ramp(2, pos - 60, 60))
    assert ring.head == 137


def test_ring_refuses_what_it_no_longer_holds() -> None:
    ring = AudioRing(channels=2, capacity=100, max_fill=0)
    ring.write(0, ramp(2, 0, 150))
    assert ring.covers(50, 150, 0)
    assert not ring.covers(40, 140, 0)  # sample 40 was overwritten
    assert not ring.covers(60, 160, 0)  # not written yet
    with pytest.raises(ValueError, match="not in the ring"):
        ring.read_into(40, np.empty((2, 100), dtype=np.float32))


def test_ring_fills_short_gaps_with_silence_and_counts_them() -> None:
    ring = AudioRing(channels=2, capacity=100, max_fill=10)
    ring.write(0, ramp(2, 0, 40))
    ring.write(45, ramp(2, 45, 20))  # 5 samples missing
    out = np.empty((2, 65), dtype=np.float32)
    ring.read_into(0, out)
    np.testing.assert_array_equal(out[:, 40:45], 0.0)
    np.testing.assert_array_equal(out[:, 45:], ramp(2, 45, 20))
    assert ring.filled_samples == 5
    assert ring.covers(0, 65, 0)


def test_ring_restarts_after_a_long_gap_instead_of_inventing_audio() -> None:
    ring = AudioRing(channels=2, capacity=100, max_fill=10)
    ring.write(0, ramp(2, 0, 40))
    ring.write(70, ramp(2, 70, 20))  # 30 missing > max_fill
    assert ring.filled_samples == 0  # the 30 missing samples are not made up as silence
    assert ring.valid_from == 70
    assert not ring.covers(30, 90, 10)  # reaches 40 samples before the restart
    assert ring.covers(62, 90, 10)  # 8 leading samples of silence are tolerated
    out = np.empty((2, 28), dtype=np.float32)
    ring.read_into(62, out)
    np.testing.assert_array_equal(out[:, :8], 0.0)  # old audio is never shown as current
    np.testing.assert_array_equal(out[:, 8:], ramp(2, 70, 20))


def test_ring_drops_samples_for_time_already_written() -> None:
    ring = AudioRing(channels=2, capacity=100, max_fill=10)
    ring.write(0, ramp(2, 0, 40))
    ring.write(35, ramp(2, 1000, 10))  # overlaps 5 samples
    assert ring.late_samples == 5
    assert ring.head == 45
    out = np.empty((2, 45), dtype=np.float32)
    ring.read_into(0, out)
    np.testing.assert_array_equal(out[:, :40], ramp(2, 0, 40))
    np.testing.assert_array_equal(out[:, 40:], ramp(2, 1005, 5))


def test_ring_reset_forgets_everything() -> None:
    ring = AudioRing(channels=2, capacity=50, max_fill=5)
    ring.write(0, ramp(2, 0, 80))
    ring.write(90, ramp(2, 90, 10))
    assert (ring.head, ring.valid_from) == (100, 90)  # the 10-sample gap restarted the ring
    ring.reset()
    assert ring.head is None and ring.valid_from == 0
    assert ring.filled_samples == 0 and ring.late_samples == 0
    assert not ring.covers(0, 10, 0)
    ring.write(7, ramp(2, 7, 10))
    out = np.empty((2, 10), dtype=np.float32)
    ring.read_into(7, out)
    np.testing.assert_array_equal(out, ramp(2, 7, 10))


def test_ring_memory_is_fixed_whatever_is_written() -> None:
    ring = AudioRing(channels=2, capacity=64, max_fill=4)
    data_id = id(ring._data)
    for i in range(500):
        ring.write(i * 37, np.ones((2, 37), dtype=np.float32))
    assert id(ring._data) == data_id and ring._data.shape == (2, 64)


# ------------------------------------------------------------------ AudioConformer


def test_conformer_streaming_resample_equals_one_shot_soxr() -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((2, 44_100))).astype(np.float32)
    conf = AudioConformer(sample_rate=16_000, channels=2, continuity_s=0.02)
    chunks = []
    pos = 0
    for n in (1024, 333, 4096, 1, 2000) * 6:
        if pos >= x.shape[1]:
            break
        block = x[:, pos : pos + n]
        chunks += conf.push(AudioBlock(pos / 44_100, block, 44_100))
        pos += block.shape[1]
    chunks += conf.flush()
    starts = [c.start_index for c in chunks]
    lengths = [c.samples.shape[1] for c in chunks]
    assert starts == list(np.cumsum([0] + lengths[:-1]))  # contiguous on the model grid
    y = np.concatenate([c.samples for c in chunks], axis=1)
    expected = soxr.resample(x.T, 44_100, 16_000, quality="HQ").T
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_conformer_maps_channels_like_training() -> None:
    rng = np.random.default_rng(1)
    six = rng.uniform(-0.5, 0.5, (6, 480)).astype(np.float32)
    conf = AudioConformer(sample_rate=48_000, channels=2, continuity_s=0.02)
    (out,) = conf.push(AudioBlock(0.0, six, 48_000))
    np.testing.assert_allclose(out.samples, to_stereo(six), atol=1e-7)
    mono = rng.uniform(-0.5, 0.5, (1, 480)).astype(np.float32)
    (out,) = conf.push(AudioBlock(0.01, mono, 48_000))
    np.testing.assert_array_equal(out.samples[0], out.samples[1])
    assert out.start_index == 480


def test_conformer_starts_a_new_run_at_a_timestamp_jump() -> None:
    conf = AudioConformer(sample_rate=16_000, channels=2, continuity_s=0.02)
    a = np.zeros((2, 1600), dtype=np.float32)
    first = conf.push(AudioBlock(0.0, a, 16_000))
    jitter = conf.push(AudioBlock(0.1 + 0.005, a, 16_000))  # 5 ms late: capture jitter
    jump = conf.push(AudioBlock(3.0, a, 16_000))
    assert [c.start_index for c in first + jitter] == [0, 1600]
    assert jump[0].start_index == 48_000
    assert conf.discontinuities == 1


def test_conformer_replaces_nonfinite_samples_with_silence_and_counts_them() -> None:
    x = ramp(2, 0, 480) / 480
    x[0, 10] = np.nan
    x[1, 20:23] = [np.inf, -np.inf, np.nan]
    original = x.copy()
    conf = AudioConformer(sample_rate=48_000, channels=2, continuity_s=0.02)
    (out,) = conf.push(AudioBlock(0.0, x, 48_000))
    want = original.copy()
    want[0, 10] = 0.0
    want[1, 20:23] = 0.0
    np.testing.assert_array_equal(out.samples, want)
    assert conf.nonfinite_samples == 4
    np.testing.assert_array_equal(x, original)  # the caller's block is not written to
    # Through the resampler too: nothing non-finite comes out, the count goes on.
    resampling = AudioConformer(sample_rate=16_000, channels=1, continuity_s=0.02)
    chunks = resampling.push(AudioBlock(0.0, x, 48_000)) + resampling.flush()
    assert all(np.isfinite(c.samples).all() for c in chunks)
    assert resampling.nonfinite_samples == 4
    resampling.reset()
    assert resampling.nonfinite_samples == 0


# ------------------------------------------------------------------ FrameStore


def _store(max_distance: float = 0.5) -> FrameStore:
    return FrameStore(SlotGrid(WindowSpec()), capacity=40, max_distance_s=max_distance,
                      frame_size=8, resize=resize_frame)


def _frame(t: float, value: int = 0) -> VideoFrame:
    return VideoFrame(t, np.full((12, 16, 3), value % 256, dtype=np.uint8))


def test_frame_store_takes_the_nearest_frame_ties_to_the_earlier() -> None:
    store = _store()
    for i, t in enumerate([0.0, 0.13, 0.3, 0.45, 0.61, 0.79, 1.1]):
        store.push(_frame(t, i))
    picked = {k: store.get(k, stop_waiting=True).t for k in (0, 200, 400, 600, 800, 1000)}
    # 0.2: 0.13 (0.07) vs 0.3 (0.1); 0.4: 0.45; 0.6: 0.61; 0.8: 0.79; 1.0: 1.1 (only after 0.79)
    assert picked == {0: 0.0, 200: 0.13, 400: 0.45, 600: 0.61, 800: 0.79, 1000: 1.1}
    store2 = _store()
    store2.push(_frame(0.1))
    store2.push(_frame(0.3))
    assert store2.get(200, stop_waiting=True).t == 0.1  # exactly halfway: the earlier frame


def test_frame_store_resizes_only_frames_that_win_a_slot() -> None:
    converted: list[float] = []

    def lazy(t: float) -> VideoFrame:
        def convert() -> np.ndarray:
            converted.append(t)
            return np.zeros((720, 1280, 3), dtype=np.uint8)

        return VideoFrame(t, convert=convert)

    store = _store()
    for k in range(26):  # 25 fps for one second
        store.push(lazy(k * 0.04))
    assert store.frames_in == 26
    assert store.get(1000, stop_waiting=True) is not None
    assert sorted(converted) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert store.frames_sampled == 6
    assert store.get(400, stop_waiting=True).image.shape == (8, 8, 3)


def test_frame_store_leaves_slots_empty_beyond_max_distance() -> None:
    store = _store(max_distance=0.3)
    store.push(_frame(0.0))
    store.push(_frame(2.0))  # the camera froze for 2 s
    assert store.get(200, stop_waiting=True) is not None  # 0.2 from the old frame
    assert store.get(800, stop_waiting=True) is None  # 0.8 from the old, 1.2 from the new
    assert store.get(1800, stop_waiting=True).t == 2.0


def test_frame_store_forgets_old_slots_and_stays_bounded() -> None:
    store = _store()
    for k in range(200):
        store.push(_frame(k * 0.2))
        store.forget_before(int(k * 200) - 1000)
    assert len(store) <= 7
    assert store.get(200 * 150, stop_waiting=True) is None  # long forgotten


def test_frame_store_ignores_frames_out_of_order() -> None:
    store = _store()
    store.push(_frame(0.4, 1))
    store.push(_frame(0.2, 2))
    assert store.out_of_order == 1
    assert store.latest_t == 0.4


def test_frame_store_break_run_stops_stretching_the_last_frame() -> None:
    store = _store()
    store.push(_frame(1.0))
    store.break_run()
    assert store.get(1200, stop_waiting=True) is None
    store.reset()
    assert store.frames_in == 0 and store.latest_t is None
