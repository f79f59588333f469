"""The bundle's three graphs as functions of their inputs: frames -> features, and a window's
waveform and frame features -> probabilities.

Nothing is held between calls: the per-frame feature cache and the encoding ahead of time live
with the caller (``avstream.stream.features``), so anything with the same members (a batching
front, a remote deployment) can stand in for an ``Engine``.

Which probabilities a window reports depends on the inputs it has (bundle/schema.py):
waveform and features -> ``final_probs``; waveform only -> the audio graph's ``audio_probs``
(the head is not run); features only -> the head with zeros on its audio inputs (the visual
head never reads them) and its ``visual_probs``.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from avstream.bundle import schema
from avstream.bundle.loader import Bundle
from avstream.inference.api import InferenceResult
from avstream.inference.precision import AUTO, choose_precision
from avstream.inference.session import GraphSession, SessionConfig

log = logging.getLogger(__name__)

BRANCH_FINAL = "final"
BRANCH_AUDIO = "audio"
BRANCH_VISUAL = "visual"
OUTPUTS: dict[str, str] = {
    "final": schema.FINAL_PROBS,
    "early": schema.EARLY_PROBS,
    "audio": schema.AUDIO_PROBS,
    "visual": schema.VISUAL_PROBS,
}
"""Branch name -> the graph output carrying its probabilities."""


class Engine:
    """A verified bundle's sessions, each graph at the precision ``--precision`` resolves to
    (see ``avstream.inference.precision``)."""

    def __init__(self, bundle: Bundle, config: SessionConfig | None = None,
                 precision: str = AUTO) -> None:
        config = config or SessionConfig()
        self.format = bundle.format
        self.training_data = bundle.manifest.provenance.training_data
        """What the bundle says it was trained on (manifest provenance.training_data)."""
        choice = choose_precision(bundle, precision, config.provider)
        self.precision = choice.precision
        """One short name to print: ``int8``, or ``auto: frame int8, audio fp32, head fp32``."""
        self.graph_precisions: dict[str, str] = dict(choice.graphs)
        """Graph name -> the precision it runs in."""
        self.precision_reason = choice.reason
        self.sessions = {name: GraphSession(name, path, config)
                         for name, path in choice.graph_paths.items()}
        self.audio = self.sessions[schema.AUDIO_GRAPH]
        self.frame = self.sessions[schema.FRAME_GRAPH]
        self.head = self.sessions[schema.HEAD_GRAPH]
        f = self.format
        self._wave_dtype = self.audio.input_types[schema.WAVEFORM]
        self._frame_dtype = self.frame.input_types[schema.FRAMES]
        self._feature_dtype = self.head.input_types[schema.FRAME_FEATURES]
        self._steps_dtype = self.head.input_types[schema.AUDIO_STEPS]
        self._probs_dtype = self.head.input_types[schema.AUDIO_PROBS]
        self._zero_steps = np.zeros((1, *f.audio_steps), dtype=self._steps_dtype)
        self._zero_probs = np.zeros((1, f.n_classes), dtype=self._probs_dtype)

    @property
    def providers(self) -> dict[str, tuple[str, ...]]:
        """Graph -> the providers ONNX Runtime really runs it on."""
        return {name: sess.providers for name, sess in self.sessions.items()}

    def encode_frames(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB -> (N, feature_dim) float32, one frame graph run."""
        s = self.format.frame_size
        if images.ndim != 4 or images.shape[1:] != (s, s, 3):
            raise ValueError(f"frames of shape {images.shape}; expected (N, {s}, {s}, 3)")
        (features,) = self.frame.run({schema.FRAMES: images.astype(self._frame_dtype, copy=False)})
        return np.asarray(features, dtype=np.float32)

    def outputs(self, waveforms: np.ndarray | None, features: np.ndarray | None
                ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Every output the inputs allow, by branch name (final, early, audio, visual), with
        the milliseconds of each graph run. ``waveforms`` (B, C, n), ``features`` (B, F, D)."""
        f = self.format
        lat: dict[str, float] = {}
        out: dict[str, np.ndarray] = {}
        if waveforms is None and features is None:
            raise ValueError("a window needs a waveform or frame features")
        if waveforms is not None:
            if waveforms.shape[1:] != (f.channels, f.window_samples):
                raise ValueError(f"waveforms of shape {waveforms.shape}; expected "
                                 f"(B, {f.channels}, {f.window_samples})")
            t0 = time.perf_counter()
            probs, steps = self.audio.run({schema.WAVEFORM: waveforms.astype(self._wave_dtype,
                                                                             copy=False)})
            lat["audio"] = (time.perf_counter() - t0) * 1e3
            out["audio"] = np.asarray(probs, dtype=np.float32)
        if features is None:
            return out, lat
        if features.shape[1:] != (f.frames_per_window, f.feature_dim):
            raise ValueError(f"features of shape {features.shape}; expected "
                             f"(B, {f.frames_per_window}, {f.feature_dim})")
        b = features.shape[0]
        if waveforms is None:
            probs = np.broadcast_to(self._zero_probs, (b, f.n_classes))
            steps = np.broadcast_to(self._zero_steps, (b, *f.audio_steps))
        elif waveforms.shape[0] != b:
            raise ValueError(f"{waveforms.shape[0]} waveforms and {b} feature sets; expected "
                             f"one of each per window")
        t0 = time.perf_counter()
        heads = self.head.run({
            schema.FRAME_FEATURES: features.astype(self._feature_dtype, copy=False),
            schema.AUDIO_STEPS: np.ascontiguousarray(steps, dtype=self._steps_dtype),
            schema.AUDIO_PROBS: np.ascontiguousarray(probs, dtype=self._probs_dtype),
        })
        lat["head"] = (time.perf_counter() - t0) * 1e3
        named = dict(zip(self.head.output_names, heads, strict=True))
        for branch in ("final", "early", "visual"):
            out[branch] = np.asarray(named[OUTPUTS[branch]], dtype=np.float32)
        return out, lat

    def infer_batch(self, waveforms: np.ndarray | None, features: np.ndarray | None
                    ) -> list[InferenceResult]:
        """B windows at once; every window of one call has the same inputs present."""
        out, lat = self.outputs(waveforms, features)
        if waveforms is not None and features is not None:
            branch = BRANCH_FINAL
        elif waveforms is not None:
            branch = BRANCH_AUDIO
        else:
            branch = BRANCH_VISUAL
        return [InferenceResult(p.copy(), branch, dict(lat)) for p in out[branch]]

    def infer(self, waveform: np.ndarray | None, features: np.ndarray | None) -> InferenceResult:
        """One window: ``waveform`` (C, n) float32 or None, ``features`` (F, D) or None."""
        (result,) = self.infer_batch(None if waveform is None else waveform[None],
                                     None if features is None else features[None])
        return result
