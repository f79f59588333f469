"""What the pipeline needs of an engine: ``avstream.inference.engine.Engine`` or a stand-in
(a batching front for many streams, a remote deployment) with the same members."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from avstream.bundle.format import StreamFormat


class InferenceResultLike(Protocol):
    probs: np.ndarray
    branch: str
    latency_ms: dict[str, float]


class EngineLike(Protocol):
    format: StreamFormat
    precision: str

    @property
    def providers(self) -> dict[str, tuple[str, ...]]: ...

    def encode_frames(self, images: np.ndarray) -> np.ndarray: ...

    def infer(self, waveform: np.ndarray | None, features: np.ndarray | None
              ) -> InferenceResultLike: ...

    def infer_batch(self, waveforms: np.ndarray | None, features: np.ndarray | None
                    ) -> list[InferenceResultLike]: ...
