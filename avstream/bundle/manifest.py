"""manifest.json as typed, frozen records; ``avstream.bundle.parse`` builds them, with errors
that name the field at fault (this module imports nothing of it: no import circle).

The manifest is the only thing the daemon trusts about a bundle: sample rate, window length,
frame size and class order all come from here, never from code defaults. Parsing checks every
field's type and the IO names against the contract in schema.py; whether the numbers agree with
each other is checked in one place, ``avstream.bundle.format.stream_format``, and the loader
then checks the files and graphs against the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from avstream.bundle.schema import FRONTEND_V1, PRECISIONS

DTYPES: tuple[str, ...] = ("float32", "float16", "uint8")
VIDEO_LAYOUT = "NHWC"

Dim = int | str
"""A tensor dimension: a fixed size, or the name of a dynamic axis (schema.BATCH_AXIS)."""


class ManifestError(ValueError):
    """A manifest field that is missing, of the wrong type or inconsistent (message names it)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: str
    """numpy dtype name: float32, float16 or uint8."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class GraphSpec:
    file: str
    """File name inside the bundle directory (no folders)."""
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    precision: str
    """What the graph computes in: fp32, fp16 (front end kept fp32) or int8 (QDQ)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "precision": self.precision,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }


@dataclass(frozen=True)
class AudioSpec:
    sample_rate: int
    """Hz: the rate the waveform input must already be resampled to."""
    channels: int
    window_samples: int
    """Samples per channel in one window (= sample_rate * window_seconds)."""
    window_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "channels": self.channels,
                "window_samples": self.window_samples, "window_seconds": self.window_seconds}


@dataclass(frozen=True)
class VideoSpec:
    frames_per_window: int
    fps: int
    """Frame slots per second of stream time (one slot every 1/fps s)."""
    frame_width: int
    """Pixels; frames are resized to this outside the graph."""
    frame_height: int
    pixel_format: str
    layout: str

    def to_dict(self) -> dict[str, Any]:
        return {"frames_per_window": self.frames_per_window, "fps": self.fps,
                "frame_width": self.frame_width, "frame_height": self.frame_height,
                "pixel_format": self.pixel_format, "layout": self.layout}


@dataclass(frozen=True)
class ExportInfo:
    opset: int
    exporter: str
    """"dynamo" when every graph went through torch.onnx's dynamo exporter, else "mixed"."""
    exporters: Mapping[str, str]
    """Graph name -> "dynamo" or "legacy": which torch.onnx exporter produced it."""
    versions: Mapping[str, str]
    """Package -> version for torch, onnx, onnxscript, onnxruntime at export time."""
    created_utc: str
    check: Mapping[str, Any]
    """The exporter's own check of the bundle against torch: windows, source ("random" or the
    data split), max_abs_diff and label_agreement of the final output."""

    def to_dict(self) -> dict[str, Any]:
        return {"opset": self.opset, "exporter": self.exporter, "exporters": dict(self.exporters),
                **dict(self.versions), "created_utc": self.created_utc,
                "check": plain(self.check)}


@dataclass(frozen=True)
class Provenance:
    checkpoint: str
    """File name of the checkpoint the bundle was exported from."""
    checkpoint_sha256: str
    step: str
    """Recipe step that produced the checkpoint (audio, visual, fusion, finetune)."""
    config: Mapping[str, Any]
    """The ModelConfig the weights were trained with (ModelConfig.to_dict())."""
    training_data: Mapping[str, Any]
    metrics: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "checkpoint_sha256": self.checkpoint_sha256,
                "step": self.step, "config": plain(self.config),
                "training_data": plain(self.training_data), "metrics": plain(self.metrics)}


@dataclass(frozen=True)
class Quantization:
    """How a reduced-precision variant was made and what it costs, measured against PyTorch."""

    method: str
    graphs: tuple[str, ...]
    """Graphs converted; the others stay fp32."""
    kept_fp32: str
    """What was deliberately left in fp32 and why (e.g. the audio front end)."""
    calibration_windows: int
    """Windows of real training data used to calibrate (0 for fp16: no calibration)."""
    calibration_split: str
    evaluation_split: str
    evaluation_windows: int
    label_agreement: float
    """Fraction of evaluation windows whose final top label equals PyTorch fp32's."""
    max_abs_diff: float
    """Largest |p_variant - p_fp32| over the final probabilities of the evaluation windows."""
    accuracy_fp32: float | None
    """None when the evaluation windows carry no labels (e.g. random windows)."""
    accuracy_variant: float | None
    accuracy_change: float | None
    """accuracy_variant - accuracy_fp32 (negative: the variant is worse)."""

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "graphs": list(self.graphs), "kept_fp32": self.kept_fp32,
                "calibration_windows": self.calibration_windows,
                "calibration_split": self.calibration_split,
                "evaluation_split": self.evaluation_split,
                "evaluation_windows": self.evaluation_windows,
                "label_agreement": self.label_agreement, "max_abs_diff": self.max_abs_diff,
                "accuracy_fp32": self.accuracy_fp32, "accuracy_variant": self.accuracy_variant,
                "accuracy_change": self.accuracy_change}


@dataclass(frozen=True)
class PrecisionVariant:
    """Extra graphs of the same model at another precision, shipped in the same bundle."""

    graphs: Mapping[str, GraphSpec]
    """Graph name -> its spec at this precision (files listed in the manifest's ``files``)."""
    quantization: Quantization
    """How the variant was made and its measured agreement with PyTorch fp32."""

    def to_dict(self) -> dict[str, Any]:
        return {"graphs": {name: g.to_dict() for name, g in self.graphs.items()},
                "quantization": self.quantization.to_dict()}


@dataclass(frozen=True)
class Timings:
    """How long each graph takes at each precision the bundle ships, measured by the export on
    its own machine: what ``--precision auto`` compares (avstream/inference/precision.py)."""

    provider: str
    """The ONNX Runtime provider the graphs ran on (auto uses these figures only there)."""
    cpu: str
    """The exporting machine's CPU model, as /proc/cpuinfo names it."""
    threads: int
    """Intra-op threads of the timed sessions."""
    batch: int
    """Items per run: one window (audio, head) or one frame (frame), as a live hop runs them."""
    runs: int
    """Timed runs per graph and precision, after warm-up runs; the figure is their median."""
    median_ms: Mapping[str, Mapping[str, float]]
    """Graph name -> precision -> median milliseconds of one run."""

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "cpu": self.cpu, "threads": self.threads,
                "batch": self.batch, "runs": self.runs,
                "median_ms": {g: dict(by) for g, by in self.median_ms.items()}}


@dataclass(frozen=True)
class Manifest:
    format: str
    format_version: int
    variant: str
    classes: tuple[str, ...]
    audio: AudioSpec
    video: VideoSpec
    graphs: Mapping[str, GraphSpec]
    files: Mapping[str, str]
    """File name -> sha256 hex of every file the bundle ships besides manifest.json."""
    export: ExportInfo
    provenance: Provenance
    quantization: Quantization | None
    variants: Mapping[str, PrecisionVariant] = field(default_factory=lambda: MappingProxyType({}))
    """Precision -> graphs at that precision besides the main ones (optional field: a bundle may
    ship fp32, int8 and fp16 together; ``--precision`` chooses)."""
    calibration: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Output name -> temperature applied inside the graphs (their probabilities are already
    calibrated; informational for the daemon). Empty: an uncalibrated checkpoint."""
    timings: Timings | None = None
    """Per-graph speed of each precision on the exporting machine (optional field: bundles
    exported before it have none, and ``auto`` then picks by provider alone)."""
    frontend: str = FRONTEND_V1
    """The audio graph's scaling rule (schema.FRONTENDS). Recorded from format version 2; a
    version-1 bundle carries FRONTEND_V1 by construction. Informational: it runs in the graph."""

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "variant": self.variant,
            **({"frontend": self.frontend} if self.format_version >= 2 else {}),
            "classes": list(self.classes),
            "audio": self.audio.to_dict(),
            "video": self.video.to_dict(),
            "graphs": {name: g.to_dict() for name, g in self.graphs.items()},
            "files": dict(self.files),
            "export": self.export.to_dict(),
            "provenance": self.provenance.to_dict(),
            "quantization": None if self.quantization is None else self.quantization.to_dict(),
            **({"variants": {p: v.to_dict() for p, v in self.variants.items()}}
               if self.variants else {}),
            "calibration": dict(self.calibration),
            **({"timings": self.timings.to_dict()} if self.timings is not None else {}),
        }


def plain(v: Any) -> Any:
    """Mappings and tuples back to JSON's dicts and lists."""
    if isinstance(v, Mapping):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    return v


__all__ = ["AudioSpec", "DTYPES", "ExportInfo", "GraphSpec", "Manifest", "ManifestError",
           "PRECISIONS", "PrecisionVariant", "Provenance", "Quantization", "TensorSpec",
           "Timings",
           "VIDEO_LAYOUT", "VideoSpec", "plain"]
