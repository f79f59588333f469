"""What a sink is given: the contract between the reporter and every output (``avstream.outputs``)."""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

from avstream.results.records import HopRecord, RunInfo
from avstream.results.summary import RunSummary


class Sink(Protocol):
    """A consumer of results; the pipeline calls start once, hop per window, end once."""

    def start(self, info: RunInfo) -> None: ...

    def hop(self, record: HopRecord) -> None: ...

    def end(self, summary: RunSummary) -> None: ...


SOURCE_OF_MODALITY: Final[dict[str, str]] = {"audio": "microphone", "video": "camera"}
"""The input behind each modality, as the outputs name it (``avstream_source_up{source}``, the
Home Assistant connectivity sensors): the microphone is whatever feeds the audio (a file's
audio track in a replay), the camera whatever feeds the video."""


@runtime_checkable
class SourceWatcher(Protocol):
    """A sink that also shows whether each input delivers: told when the source reports one
    lost or back (``ModalityLost`` / ``ModalityRestored``). At ``start()`` every input of the
    run's ``source_modalities`` is up."""

    def source_changed(self, source: str, up: bool, t: float) -> None: ...
