"""Window scheduling on the one clock, and frame slots that match training's nearest-frame rule."""

from __future__ import annotations

import numpy as np
import pytest

from avstream.media.frames import resize_frame
from avstream.sources.base import VideoFrame
from avstream.stream.buffers import FrameStore
from avstream.stream.windows import (
    DEFAULT_HOP_MS,
    SlotGrid,
    WindowScheduler,
    WindowSpec,
    hop_ms_from_seconds,
)


def test_default_hop_is_one_frame_period() -> None:
    spec = WindowSpec()
    assert DEFAULT_HOP_MS == spec.frame_period_ms == 200
    w = spec.window(10)
    assert w.t_end == 2.0 and w.t_start == 1.0
    assert w.slot_keys == (1000, 1200, 1400, 1600, 1800)
    # Each hop brings exactly one new slot, and drops one.
    nxt = spec.window(11)
    assert set(nxt.slot_keys) - set(w.slot_keys) == {2000}


@pytest.mark.parametrize("hop_s, ms", [(0.2, 200), (0.5, 500), (0.25, 250), (1.0, 1000), (0.01, 10)])
def test_hop_accepts_whole_milliseconds(hop_s: float, ms: int) -> None:
    assert hop_ms_from_seconds(hop_s) == ms


@pytest.mark.parametrize("hop_s", [0.0, -0.2, 0.0005, 1.5, float("nan"), 0.2005])
def test_hop_refuses_nonsense_with_the_reason(hop_s: float) -> None:
    with pytest.raises(ValueError, match="hop"):
        hop_ms_from_seconds(hop_s)


def test_scheduler_starts_with_the_first_full_window_on_the_hop_grid() -> None:
    s = WindowScheduler(WindowSpec(hop_ms=200))
    assert s.pending is None
    s.start(0.0)
    assert s.pending.t_end == 1.0
    s.advance()
    assert s.pending.t_end == 1.2
    s.reset()
    s.start(-0.021)  # AAC priming: the first audio block starts a little before zero
    assert s.pending.t_end == 1.0
    s.reset()
    s.start(12.31)
    assert s.pending.t_end == pytest.approx(13.4)


def test_slot_grid_lists_only_real_slots() -> None:
    grid = SlotGrid(WindowSpec(hop_ms=500))
    keys = list(grid.keys_between(0, 2000))
    spec = grid.spec
    real = {k for i in range(0, 10) for k in spec.window(i).slot_keys if 0 <= k < 2000}
    assert set(keys) == real
    assert keys == sorted(keys)


@pytest.mark.parametrize("hop_ms", [200, 500, 300])
@pytest.mark.parametrize("fps, jitter", [(5.0, 0.0), (25.0, 0.0), (7.3, 0.0), (30.0, 0.004),
                                         (2.0, 0.0)])
def test_streaming_slots_pick_the_same_frames_as_training(hop_ms: int, fps: float,
                                                          jitter: float) -> None:
    """The daemon's incremental choice equals training's whole-file nearest-frame rule."""
    rng = np.random.default_rng(int(fps * 10) + hop_ms)
    times = np.arange(0.013, 6.0, 1.0 / fps) + rng.uniform(-jitter, jitter, size=1)[0]
    times = np.sort(times + rng.uniform(0, jitter, times.size))
    spec = WindowSpec(hop_ms=hop_ms)
    store = FrameStore(SlotGrid(spec), capacity=64, max_distance_s=1.0, frame_size=4,
                       resize=resize_frame)
    sched = WindowScheduler(spec)
    sched.start(float(times[0]))
    checked = 0
    for t in times:
        store.push(VideoFrame(float(t), np.zeros((4, 4, 3), dtype=np.uint8)))
        w = sched.pending
        while store.latest_t >= w.last_slot_ms / 1000 - 1e-9:
            got = [store.get(k, stop_waiting=True).t for k in w.slot_keys]
            slots = w.t_end - 1.0 + 0.2 * np.arange(5)
            # Training's rule by brute force: the nearest frame, ties to the earlier one.
            d = np.abs(slots[:, None] - times[None, :])
            want = times[np.argmin(d + 1e-12 * np.arange(times.size)[None, :], axis=1)]
            np.testing.assert_allclose(got, want)
            checked += 1
            sched.advance()
            store.forget_before(sched.pending.slot_keys[0])
            w = sched.pending
    assert checked >= 4 * 1000 // hop_ms
