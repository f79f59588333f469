"""Frame geometry and the frame-slot clock shared by training's cache and the daemon.

A 1-s window ending at stream time t has its frame slots at t - 1 + i * 0.2 s (avstream.stream.windows);
each slot takes the decoded frame whose container timestamp is nearest (``earlier_is_nearer``).
Using timestamps (not frame counts) keeps audio and video aligned for variable-frame-rate files
and cameras that drop frames.
"""

from __future__ import annotations

import cv2
import numpy as np

TIE_S = 1e-9
"""Distances closer than this are a tie (0.2 - 0.1 and 0.3 - 0.2 differ in binary floats)."""


def earlier_is_nearer(slot_s: float, before_s: float, after_s: float) -> bool:
    """The nearest-frame rule, the one used everywhere (training's decode, the daemon's frame
    store): a slot takes the frame nearest to it in time, and a tie goes to the earlier frame.
    ``before_s <= slot_s <= after_s`` are the slot and the frames on either side of it."""
    return slot_s - before_s <= after_s - slot_s + TIE_S


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
