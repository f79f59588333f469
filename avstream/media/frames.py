"""Frame geometry and the frame-slot clock shared by training's cache and the daemon.

A 1-s window ending at stream time t has its frame slots at t - 1 + i * 0.2 s; each slot takes
the decoded frame whose container timestamp is nearest. Using timestamps (not frame counts)
keeps audio and video aligned for variable-frame-rate files and cameras that drop frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from avstream.timebase import FRAME_PERIOD_MS, FRAMES_PER_WINDOW, VIDEO_FPS, WINDOW_SECONDS

FRAME_PERIOD_S: float = FRAME_PERIOD_MS / 1000.0  # 0.2 s between frame slots


def resize_frame(rgb: np.ndarray, size: int) -> np.ndarray:
    """Square-resize an RGB uint8 frame as the seed did (aspect ratio not kept).

    INTER_AREA is the one interpolation used everywhere: training and the daemon must produce
    identical pixels for the same decoded frame.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"frame has shape {rgb.shape} and dtype {rgb.dtype}; expected (H, W, 3) uint8 RGB"
        )
    if size < 1:
        raise ValueError(f"frame size {size}; expected a positive number of pixels")
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def upright(rgb: np.ndarray, rotation_deg: float) -> np.ndarray:
    """The picture as it is meant to be shown: ``rotation_deg`` is the counter-clockwise rotation
    a file's display matrix asks for (PyAV ``VideoFrame.rotation``; phones record sideways and
    say so there), applied in quarter turns as FFmpeg's autorotate does."""
    k = round(rotation_deg / 90.0) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def slot_times(
    window_end_s: float,
    n_slots: int = FRAMES_PER_WINDOW,
    period_s: float = FRAME_PERIOD_S,
    window_s: float = float(WINDOW_SECONDS),
) -> np.ndarray:
    """Slot times of the window [window_end_s - window_s, window_end_s): t - 1 + i * 0.2 s."""
    start = window_end_s - window_s
    return start + period_s * np.arange(n_slots, dtype=np.float64)


def grid_times(n_slots: int, fps: float = VIDEO_FPS, start_s: float = 0.0) -> np.ndarray:
    """The file clock's sampling grid k / fps (k = 0..n_slots-1), as training's cache uses it."""
    return start_s + np.arange(n_slots, dtype=np.float64) / fps


def nearest_frame_indices(frame_times: np.ndarray, slot_times: np.ndarray) -> np.ndarray:
    """Index of the frame whose timestamp is nearest to each slot time; ties go to the earlier frame.

    ``frame_times`` need not be uniformly spaced (variable frame rate) but must be sorted
    ascending, as decoded presentation timestamps are.
    """
    ft = np.asarray(frame_times, dtype=np.float64)
    st = np.asarray(slot_times, dtype=np.float64)
    if ft.ndim != 1 or ft.size == 0:
        raise ValueError(f"frame_times has shape {ft.shape}; expected a non-empty 1-D array")
    if ft.size > 1 and np.any(np.diff(ft) < 0):
        raise ValueError("frame_times are not sorted; expected ascending presentation timestamps")
    after = np.searchsorted(ft, st, side="left")  # first frame at or after each slot
    after = np.clip(after, 0, ft.size - 1)
    before = np.clip(after - 1, 0, ft.size - 1)
    choose_before = np.abs(st - ft[before]) <= np.abs(ft[after] - st)
    return np.where(choose_before, before, after).astype(np.int64)
