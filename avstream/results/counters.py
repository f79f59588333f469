"""What a run counts: each stage's own count record, merged once into the ``Counters`` that a
hop record and the exit summary carry.

Each stage counts what it alone sees and exposes it as a small record (``counts()``): the window
assembler with its buffers (``avstream.stream.assembly.AssemblyCounts``), the drop rule
(``avstream.stream.arrivals.ArrivalCounts``) and the reporter (``ReporterCounts``, here). The
stream core's records live beside the code that counts them, because the core imports nothing
of ``avstream.results``; ``counters_of`` is the one place they become ``Counters``. No stage
writes into another's counts. The frame features' record
(``avstream.stream.features.FrameCounts``: every run of the frame graph) is no line's counter:
the summary carries it apart, as ``frame_encodes``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avstream.stream.arrivals import ArrivalCounts
    from avstream.stream.assembly import AssemblyCounts


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
    """Frames the windows that ran used (an invalid model output included), each counted once,
    with the first window that uses it: in a line and in the summary alike, so that lines depend
    on the stream alone. Every run of the frame graph, frames encoded ahead for windows that
    were dropped or never ran included, is the summary's ``frame_encodes``."""
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


@dataclass(slots=True)
class ReporterCounts:
    """What the reporter counts, window by window (``Counters`` has each field's meaning)."""

    windows: int = 0
    windows_invalid: int = 0
    frames_encoded: int = 0
    modality_changes: int = 0


def counters_of(assembly: AssemblyCounts, arrivals: ArrivalCounts,
                reporter: ReporterCounts) -> Counters:
    """The ``Counters`` a line or the summary carries, from the stages' own records. Each field
    is counted by exactly one stage: a field given twice is a TypeError here, and
    tests/test_counters.py fails on a field that no stage gives."""
    return Counters(**_fields(assembly), **_fields(arrivals), **_fields(reporter))


def _fields(record: Any) -> dict[str, int]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
