"""How a stream is cut into windows and how long a window may wait: ``PipelineConfig``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from avstream.stream.smoothing import SmoothingConfig
from avstream.stream.windows import DEFAULT_HOP_MS


@dataclass(frozen=True)
class PipelineConfig:
    hop_ms: int = DEFAULT_HOP_MS
    """Between window ends. 200 ms = one frame period: one new frame slot, one encode per hop."""
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    max_wait_s: float = 2.0
    """Stream time a window waits for a lagging modality. Covers the audio/video interleave of
    common muxers and a camera hiccup; a source that is really gone says so itself."""
    stale_after_s: float | None = None
    """Wall time a ready window may wait for the engine (from the moment its media was complete)
    before it is dropped as ``hops_dropped``; None = one hop. Media that arrives late is never a
    reason to drop: such windows run and are counted in ``windows_late_media``."""
    audio_continuity_s: float = 0.02
    """Audio blocks this close to where the previous ended continue it: capture clocks jitter
    by a few ms, and treating jitter as gaps would chop the resampler's run."""
    audio_max_fill_s: float = 0.25
    """Gaps up to this are filled with silence (a lost AAC packet is 21 ms); longer gaps restart
    the audio, and windows reaching into them run without audio."""
    max_frame_distance_s: float = 0.5
    """A slot takes its nearest frame only if it is this close; enough for a 1 fps camera."""
    pipelined: bool = True
    """Encode each slot's frame in a background thread as soon as it is known, so a window's
    critical path is only the audio graph and the head; False encodes on the window's turn."""

    def __post_init__(self) -> None:
        for name in ("max_wait_s", "audio_continuity_s", "audio_max_fill_s", "max_frame_distance_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}={v}; expected a finite number >= 0 (seconds)")
        if self.stale_after_s is not None and not self.stale_after_s > 0:
            raise ValueError(f"stale_after_s={self.stale_after_s}; expected > 0 or None")
