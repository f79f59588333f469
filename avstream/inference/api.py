"""The one engine protocol: what a pipeline, the frame encoder thread and the driver need of an
engine, and the result it gives for a window.

``avstream.inference.engine.Engine`` runs the bundle's graphs itself; stand-ins (serve's
``BatchedEngine`` that batches across streams, the Ray ``RemoteEngine``: both ``EngineFacade``;
test doubles) have the same members and hand back the same ``InferenceResult``. This module imports no ONNX Runtime, so
the stream core can name the protocol without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from avstream.bundle.format import StreamFormat


@dataclass(frozen=True, slots=True)
class InferenceResult:
    probs: np.ndarray
    """(classes,) float32: this window's probabilities (owned by the result)."""
    branch: str
    """Which output ``probs`` is: final, audio or visual."""
    latency_ms: dict[str, float]
    """Per graph run for this call: audio, head (a batch shares one figure)."""


class EngineLike(Protocol):
    format: StreamFormat
    precision: str

    @property
    def providers(self) -> dict[str, tuple[str, ...]]: ...

    def encode_frames(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB -> (N, feature_dim) float32."""
        ...

    def infer(self, waveform: np.ndarray | None, features: np.ndarray | None
              ) -> InferenceResult: ...

    def infer_batch(self, waveforms: np.ndarray | None, features: np.ndarray | None
                    ) -> list[InferenceResult]: ...


class EngineFacade:
    """The base of the stand-ins (serve's ``BatchedEngine``, the Ray ``RemoteEngine``): what a
    pipeline reads of an engine, copied from the real one; the calls go elsewhere, and
    ``close()`` tells that elsewhere a stream's run ended."""

    def __init__(self, format: StreamFormat, providers: dict[str, tuple[str, ...]],
                 precision: str) -> None:
        self.format = format
        self.providers = providers
        self.precision = precision

    def encode_frames(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def infer(self, waveform: np.ndarray | None, features: np.ndarray | None) -> InferenceResult:
        raise NotImplementedError

    def infer_batch(self, waveforms: np.ndarray | None, features: np.ndarray | None
                    ) -> list[InferenceResult]:
        """Row by row through ``infer`` (each row may join other streams' rows)."""
        n = len(waveforms) if waveforms is not None else len(features)  # type: ignore[arg-type]
        return [self.infer(None if waveforms is None else waveforms[i],
                           None if features is None else features[i]) for i in range(n)]

    def close(self) -> None:
        raise NotImplementedError
