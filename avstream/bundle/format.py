"""The stream format a bundle expects, built once from its manifest, and every check that the
manifest and its graphs agree with it.

This is the one place where a bundle's numbers are checked against each other: the audio
window against the waveform input, the frame size against the frame input, the frame rate
against the frames per window, the head's inputs against the other graphs' outputs, and (once
the graphs are open) each graph's real signature against the manifest. Everything downstream
(engine, window assembler, pipeline) takes a ``StreamFormat`` and trusts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avstream.bundle import schema
from avstream.bundle.manifest import Manifest, ManifestError, TensorSpec
from avstream.errors import BundleError
from avstream.timebase import MS_PER_S

ORT_DTYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
}
PROBS_OUTPUTS: frozenset[str] = frozenset(
    {schema.AUDIO_PROBS, schema.VISUAL_PROBS, schema.EARLY_PROBS, schema.FINAL_PROBS}
)


@dataclass(frozen=True)
class StreamFormat:
    """What a window must look like for this bundle (all read from the manifest)."""

    classes: tuple[str, ...]
    sample_rate: int
    """Hz of the waveform input."""
    channels: int
    window_samples: int
    """Samples per channel in one window."""
    window_ms: int
    """Window length in whole milliseconds (window_samples / sample_rate)."""
    frames_per_window: int
    fps: int
    """Frame slots per second: one slot every ``frame_period_ms``."""
    frame_size: int
    """Frames are resized to frame_size x frame_size RGB before the frame graph."""
    feature_dim: int
    """Length of one frame's feature vector (frame graph output, head input)."""
    audio_steps: tuple[int, int]
    """(steps, dim) of the audio graph's per-step output that the head reads."""

    @property
    def window_seconds(self) -> float:
        return self.window_ms / MS_PER_S

    @property
    def frame_period_ms(self) -> int:
        return self.window_ms // self.frames_per_window

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _input(m: Manifest, graph: str, name: str) -> TensorSpec:
    return next(t for t in m.graphs[graph].inputs if t.name == name)


def _fixed(spec: TensorSpec, graph: str) -> tuple[int, ...]:
    dims = spec.shape[1:]
    if not all(isinstance(d, int) for d in dims):
        raise ManifestError(f"graphs.{graph} input '{spec.name}' has shape {list(spec.shape)}; "
                            f"expected fixed sizes after the batch axis")
    return tuple(int(d) for d in dims)


def stream_format(m: Manifest) -> StreamFormat:
    """The manifest's stream format, or ManifestError naming the two fields that disagree."""
    a, v = m.audio, m.video
    if a.window_samples != round(a.sample_rate * a.window_seconds):
        raise ManifestError(f"audio.window_samples={a.window_samples} disagrees with "
                            f"audio.sample_rate={a.sample_rate} x audio.window_seconds="
                            f"{a.window_seconds}")
    window_ms = round(a.window_seconds * MS_PER_S)
    if abs(window_ms - a.window_seconds * MS_PER_S) > 1e-6:
        raise ManifestError(f"audio.window_seconds={a.window_seconds} is not a whole number of "
                            f"milliseconds; expected e.g. 1.0")
    if window_ms % v.frames_per_window or v.fps * (window_ms // v.frames_per_window) != MS_PER_S:
        raise ManifestError(f"video.fps={v.fps} disagrees with video.frames_per_window="
                            f"{v.frames_per_window} per audio.window_seconds={a.window_seconds}")
    if v.frame_width != v.frame_height:
        raise ManifestError(f"video.frame_width={v.frame_width} and video.frame_height="
                            f"{v.frame_height} differ; expected square frames")
    expected = {
        (schema.AUDIO_GRAPH, schema.WAVEFORM): (a.channels, a.window_samples),
        (schema.FRAME_GRAPH, schema.FRAMES): (v.frame_height, v.frame_width, 3),
    }
    for (graph, tensor), shape in expected.items():
        spec = _input(m, graph, tensor)
        if spec.shape[1:] != shape:
            raise ManifestError(f"graphs.{graph} input '{tensor}' has shape {list(spec.shape)} but "
                                f"the audio/video settings imply {[schema.BATCH_AXIS, *shape]}")
    head_ff = _input(m, schema.HEAD_GRAPH, schema.FRAME_FEATURES)
    ff = _fixed(head_ff, schema.HEAD_GRAPH)
    if len(ff) != 2 or ff[0] != v.frames_per_window:
        raise ManifestError(f"graphs.head input 'frame_features' has shape {list(head_ff.shape)}; "
                            f"expected [batch, video.frames_per_window={v.frames_per_window}, dim]")
    steps = _fixed(_input(m, schema.HEAD_GRAPH, schema.AUDIO_STEPS), schema.HEAD_GRAPH)
    if len(steps) != 2:
        raise ManifestError(f"graphs.head input 'audio_steps' has {len(steps)} dims after the "
                            f"batch axis; expected 2 (steps, dim)")
    for name, g in m.graphs.items():
        if g.file not in m.files:
            raise ManifestError(f"graphs.{name}.file {g.file!r} is not listed in 'files'")
    for precision, variant in m.variants.items():
        for name, g in variant.graphs.items():
            where = f"variants.{precision}.graphs.{name}"
            if g.file not in m.files:
                raise ManifestError(f"{where}.file {g.file!r} is not listed in 'files'")
            main = m.graphs[name]
            if [t.shape for t in (*g.inputs, *g.outputs)] != \
                    [t.shape for t in (*main.inputs, *main.outputs)]:
                raise ManifestError(f"{where} has other tensor shapes than graphs.{name}; "
                                    f"expected the same stream format at every precision")
    if m.timings is not None:
        shipped = {m.variant, *m.variants}
        for graph, by_precision in m.timings.median_ms.items():
            if not set(by_precision) <= shipped:
                raise ManifestError(f"timings.median_ms.{graph} names {sorted(by_precision)}; "
                                    f"expected precisions the bundle ships ({sorted(shipped)})")
    return StreamFormat(
        classes=m.classes,
        sample_rate=a.sample_rate,
        channels=a.channels,
        window_samples=a.window_samples,
        window_ms=window_ms,
        frames_per_window=v.frames_per_window,
        fps=v.fps,
        frame_size=v.frame_width,
        feature_dim=ff[1],
        audio_steps=(steps[0], steps[1]),
    )


def _fmt_shape(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_signature(path: Path, kind: str, expected: tuple[TensorSpec, ...],
                    actual: Sequence[Any], n_classes: int) -> None:
    """A graph's real inputs or outputs (ONNX Runtime NodeArgs) against the manifest's."""
    got_names = [a.name for a in actual]
    want_names = [t.name for t in expected]
    if got_names != want_names:
        raise BundleError(f"{path}: graph {kind}s are {got_names}; {schema.MANIFEST_NAME} says "
                          f"{want_names}")
    for spec, arg in zip(expected, actual, strict=True):
        shape = list(arg.shape)
        if spec.name in PROBS_OUTPUTS and len(shape) == 2 and isinstance(shape[1], int) \
                and shape[1] != n_classes:
            raise BundleError(f"{path}: {kind} '{spec.name}' gives {shape[1]} classes but "
                              f"{schema.MANIFEST_NAME} lists {n_classes} classes")
        dtype = ORT_DTYPES.get(arg.type, arg.type)
        if dtype != spec.dtype:
            raise BundleError(f"{path}: {kind} '{spec.name}' is {dtype}; {schema.MANIFEST_NAME} "
                              f"says {spec.dtype}")
        if len(shape) != len(spec.shape) or not all(
            (isinstance(w, str) and not isinstance(g, int)) or g == w
            for g, w in zip(shape, spec.shape, strict=True)
        ):
            raise BundleError(f"{path}: {kind} '{spec.name}' has shape {_fmt_shape(shape)}; "
                              f"{schema.MANIFEST_NAME} says {_fmt_shape(spec.shape)}")
