"""What a run counts, as a plain record the stream core fills and the outputs report.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass


@dataclass
class Counters:
    """Everything the pipeline skipped, dropped, filled or changed: nothing goes uncounted."""

    windows: int = 0
    """Windows inferred (one record each)."""
    hops_dropped: int = 0
    """Windows skipped because inference was behind (live / --realtime): the window waited for
    the engine more than ``stale_after_s`` (default one hop) after its media was complete."""
    windows_late_media: int = 0
    """Windows whose media reached the pipeline more than one hop after the window's end
    (live / --realtime): run as usual, never dropped for it."""
    windows_without_media: int = 0
    """Windows that no modality could fill (a gap in both, or before a modality returned)."""
    windows_invalid: int = 0
    """Windows whose model output was not finite (NaN/inf): skipped, never smoothed."""
    frames_received: int = 0
    frames_sampled: int = 0
    """Frames chosen for a slot and resized (the others are never converted)."""
    frames_encoded: int = 0
    """Frames run through the ``frame`` graph, each sampled frame once: during the run, counted
    with the first window that uses it (so lines depend on the stream alone); in the summary,
    every encode, including frames encoded ahead for a window that never ran."""
    frames_skipped: int = 0
    """Frames the source dropped before the pipeline saw them (camera reader kept a newer one)."""
    frames_out_of_order: int = 0
    frames_overflowed: int = 0
    """Chosen frames evicted from the frame store before use (video far ahead of audio)."""
    corrupt_packets: int = 0
    """Undecodable packets skipped by the source."""
    audio_overflows: int = 0
    """Input overflow reports (audio lost before the pipeline)."""
    audio_samples_dropped: int = 0
    """Samples lost before the pipeline, at the input's own rate."""
    audio_gaps: int = 0
    """Discontinuities in audio timestamps (filled with silence when short, else a restart)."""
    audio_filled_samples: int = 0
    """Model-rate samples of silence put in short gaps."""
    audio_late_samples: int = 0
    """Model-rate samples that arrived for a time already written, and were dropped."""
    audio_nonfinite_samples: int = 0
    """Input sample values (each channel counts) that were NaN or +/-Inf, replaced by silence
    (0.0) before the window: the window runs."""
    modality_changes: int = 0
    """Times the set of modalities used for a window changed."""

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))  # flat ints: no need for asdict's deep copy every hop

    def copy(self) -> Counters:
        return copy.copy(self)
