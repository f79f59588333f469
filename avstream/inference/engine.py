"""One hop of inference on the three graphs, with each frame encoded exactly once.

Frames are identified by their arrival number (``FrameRef.seq``): a frame that stays in the
window for five hops is encoded on the hop it enters and read from the cache on the other
four. The ``audio`` and ``head`` graphs run every hop.

Which probabilities a hop reports depends on the modalities it has (bundle/schema.py):
both -> ``final_probs``; audio only -> the audio graph's ``audio_probs`` (the head is not run);
video only -> the head with zeros on its audio inputs (the visual head never reads them) and
its ``visual_probs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from avstream.buffers import FrameRef
from avstream.bundle import schema
from avstream.errors import BundleError
from avstream.inference.session import GraphSession, SessionConfig

log = logging.getLogger(__name__)

BRANCH_FINAL = "final"
BRANCH_AUDIO = "audio"
BRANCH_VISUAL = "visual"


class BundleLike(Protocol):
    """What the engine needs of ``avstream.bundle.loader.Bundle``."""

    @property
    def manifest(self) -> object: ...

    def graph_path(self, name: str) -> Path: ...


@dataclass(frozen=True)
class ModelSpec:
    """The stream format a bundle expects, read from its manifest (never from code defaults)."""

    classes: tuple[str, ...]
    sample_rate: int
    channels: int
    window_samples: int
    window_seconds: float
    frames_per_window: int
    fps: int
    frame_size: int
    variant: str

    @classmethod
    def from_manifest(cls, m: object) -> ModelSpec:
        try:
            audio, video = m.audio, m.video  # type: ignore[attr-defined]
            spec = cls(
                classes=tuple(m.classes),  # type: ignore[attr-defined]
                sample_rate=int(audio.sample_rate),
                channels=int(audio.channels),
                window_samples=int(audio.window_samples),
                window_seconds=float(audio.window_seconds),
                frames_per_window=int(video.frames_per_window),
                fps=int(video.fps),
                frame_size=int(video.frame_width),
                variant=str(getattr(m, "variant", "fp32")),
            )
        except AttributeError as e:
            raise BundleError(f"bundle manifest lacks a field the daemon needs ({e})") from e
        if video.frame_width != video.frame_height:
            raise BundleError(
                f"bundle frames are {video.frame_width}x{video.frame_height}; expected square "
                f"frames (the model resizes to size x size)"
            )
        return spec


@dataclass(frozen=True, slots=True)
class InferenceResult:
    probs: np.ndarray
    """(classes,) float32: this window's probabilities (owned by the result)."""
    branch: str
    """Which output ``probs`` is: final, audio or visual."""
    latency_ms: dict[str, float]
    """Per stage: frame (encoding new frames), audio, head."""
    frames_encoded: int


class Engine:
    """The bundle's three sessions plus the per-frame feature cache."""

    def __init__(self, bundle: BundleLike, config: SessionConfig | None = None) -> None:
        config = config or SessionConfig()
        self.spec = ModelSpec.from_manifest(bundle.manifest)
        self.sessions = {
            name: GraphSession(name, bundle.graph_path(name), config) for name in schema.GRAPHS
        }
        self.audio = self.sessions[schema.AUDIO_GRAPH]
        self.frame = self.sessions[schema.FRAME_GRAPH]
        self.head = self.sessions[schema.HEAD_GRAPH]
        s = self.spec
        head_ff = self.head.input_shapes[schema.FRAME_FEATURES]
        head_steps = self.head.input_shapes[schema.AUDIO_STEPS]
        if not (isinstance(head_ff[2], int) and isinstance(head_steps[1], int)
                and isinstance(head_steps[2], int)):
            raise BundleError(
                f"head graph inputs have shapes {head_ff} and {head_steps}; expected fixed "
                f"feature sizes after the batch axis"
            )
        self.feature_dim = int(head_ff[2])
        # Buffers reused every hop: the pipeline writes the window's audio straight into
        # ``waveform``; frame features are gathered into ``_features``.
        self.waveform = np.zeros((1, s.channels, s.window_samples),
                                 dtype=self.audio.input_types[schema.WAVEFORM])
        self._features = np.zeros((1, s.frames_per_window, self.feature_dim),
                                  dtype=self.head.input_types[schema.FRAME_FEATURES])
        self._zero_steps = np.zeros((1, int(head_steps[1]), int(head_steps[2])),
                                    dtype=self.head.input_types[schema.AUDIO_STEPS])
        self._zero_probs = np.zeros((1, len(s.classes)),
                                    dtype=self.head.input_types[schema.AUDIO_PROBS])
        self._frame_dtype = self.frame.input_types[schema.FRAMES]
        self._cache: dict[int, np.ndarray] = {}  # at most one window's frames after a hop
        self.frames_encoded = 0

    @property
    def providers(self) -> dict[str, tuple[str, ...]]:
        """Graph -> the providers ONNX Runtime really runs it on."""
        return {name: sess.providers for name, sess in self.sessions.items()}

    def reset(self) -> None:
        self._cache.clear()
        self.waveform[:] = 0
        self._features[:] = 0
        self.frames_encoded = 0

    def _encode_new(self, frames: Sequence[FrameRef]) -> int:
        new: list[FrameRef] = []
        seen: set[int] = set()
        for f in frames:
            if f.seq not in self._cache and f.seq not in seen:
                new.append(f)
                seen.add(f.seq)
        if new:
            batch = np.stack([f.image for f in new]).astype(self._frame_dtype, copy=False)
            (features,) = self.frame.run({schema.FRAMES: batch})
            for f, row in zip(new, features, strict=True):
                self._cache[f.seq] = row
            self.frames_encoded += len(new)
        # Frames arrive in order: anything older than this window's first frame is done with.
        oldest = min(f.seq for f in frames)
        for k in [k for k in self._cache if k < oldest]:
            del self._cache[k]
        return len(new)

    def infer(self, use_audio: bool, frames: Sequence[FrameRef] | None) -> InferenceResult:
        """Run one window. The caller has already written its audio into ``self.waveform``."""
        lat: dict[str, float] = {}
        encoded = 0
        if frames is not None:
            if len(frames) != self.spec.frames_per_window:
                raise ValueError(f"{len(frames)} frames; expected {self.spec.frames_per_window}")
            t0 = time.perf_counter()
            encoded = self._encode_new(frames)
            for i, f in enumerate(frames):
                self._features[0, i] = self._cache[f.seq]
            lat["frame"] = (time.perf_counter() - t0) * 1e3
        if use_audio:
            t0 = time.perf_counter()
            out = dict(zip(self.audio.output_names,
                           self.audio.run({schema.WAVEFORM: self.waveform}), strict=True))
            audio_probs, audio_steps = out[schema.AUDIO_PROBS], out[schema.AUDIO_STEPS]
            lat["audio"] = (time.perf_counter() - t0) * 1e3
            if frames is None:
                return InferenceResult(np.asarray(audio_probs[0], dtype=np.float32),
                                       BRANCH_AUDIO, lat, 0)
        elif frames is None:
            raise ValueError("a window needs audio or frames")
        else:
            audio_probs, audio_steps = self._zero_probs, self._zero_steps
        t0 = time.perf_counter()
        outs = self.head.run({
            schema.FRAME_FEATURES: self._features,
            schema.AUDIO_STEPS: np.asarray(audio_steps, dtype=self._zero_steps.dtype),
            schema.AUDIO_PROBS: np.asarray(audio_probs, dtype=self._zero_probs.dtype),
        })
        lat["head"] = (time.perf_counter() - t0) * 1e3
        head = dict(zip(self.head.output_names, outs, strict=True))
        if use_audio:
            return InferenceResult(np.asarray(head[schema.FINAL_PROBS][0], dtype=np.float32),
                                   BRANCH_FINAL, lat, encoded)
        return InferenceResult(np.asarray(head[schema.VISUAL_PROBS][0], dtype=np.float32),
                               BRANCH_VISUAL, lat, encoded)
