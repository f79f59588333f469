"""manifest.json as typed, frozen records, parsed with errors that name the field at fault.

The manifest is the only thing the daemon trusts about a bundle: sample rate, window length,
frame size and class order all come from here, never from code defaults. Parsing therefore
checks every field's type and the manifest's internal consistency (the waveform input agrees
with the audio settings, the frame input with the video settings, the IO names with the
contract in schema.py); the loader then checks the files and graphs against it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from avstream.bundle import schema

DTYPES: tuple[str, ...] = ("float32", "float16", "uint8")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
VIDEO_LAYOUT = "NHWC"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

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
    calibration: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Output name -> temperature applied inside the graphs (their probabilities are already
    calibrated; informational for the daemon). Empty: an uncalibrated checkpoint."""

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "variant": self.variant,
            "classes": list(self.classes),
            "audio": self.audio.to_dict(),
            "video": self.video.to_dict(),
            "graphs": {name: g.to_dict() for name, g in self.graphs.items()},
            "files": dict(self.files),
            "export": self.export.to_dict(),
            "provenance": self.provenance.to_dict(),
            "quantization": None if self.quantization is None else self.quantization.to_dict(),
            "calibration": dict(self.calibration),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        return parse_manifest(d)


def plain(v: Any) -> Any:
    """Mappings and tuples back to JSON's dicts and lists."""
    if isinstance(v, Mapping):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    return v


def _frozen(v: Any) -> Any:
    if isinstance(v, Mapping):
        return MappingProxyType({k: _frozen(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    return v


# ---------------------------------------------------------------------------------------------
# Parsing: small typed getters, each naming the dotted field path in its error.


def _obj(d: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ManifestError(f"field '{path}' is {type(d).__name__}; expected an object")
    return d


def _get(d: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in d:
        where = f"'{path}'" if path else "the top level"
        raise ManifestError(f"field '{key}' is missing from {where}")
    return d[key]


def _field(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _int(d: Mapping[str, Any], key: str, path: str = "", minimum: int = 1) -> int:
    v = _get(d, key, path)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ManifestError(f"field '{_field(path, key)}' is {v!r}; expected an integer >= {minimum}")
    return v


def _float(d: Mapping[str, Any], key: str, path: str = "", optional: bool = False) -> float | None:
    v = _get(d, key, path)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ManifestError(f"field '{_field(path, key)}' is {v!r}; expected a number")
    return float(v)


def _number(d: Mapping[str, Any], key: str, path: str) -> float:
    v = _float(d, key, path)
    if v is None:  # unreachable: _float returns None only when optional
        raise ManifestError(f"field '{_field(path, key)}' is null; expected a number")
    return v


def _str(d: Mapping[str, Any], key: str, path: str = "", choices: tuple[str, ...] = ()) -> str:
    v = _get(d, key, path)
    if not isinstance(v, str):
        raise ManifestError(f"field '{_field(path, key)}' is {v!r}; expected a string")
    if choices and v not in choices:
        raise ManifestError(f"field '{_field(path, key)}' is {v!r}; expected one of {list(choices)}")
    return v


def _file_name(v: Any, path: str) -> str:
    if not isinstance(v, str) or not v or "/" in v or "\\" in v or v in (".", ".."):
        raise ManifestError(f"field '{path}' is {v!r}; expected a plain file name inside the bundle")
    return v


def check_format(d: Any) -> int:
    """Format name and version first: a future version may lay out everything else differently."""
    d = _obj(d, "(top level)")
    fmt = _get(d, "format", "")
    if fmt != schema.FORMAT_NAME:
        raise ManifestError(f"format is {fmt!r}; expected {schema.FORMAT_NAME!r}")
    version = _get(d, "format_version", "")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ManifestError(f"format_version is {version!r}; expected an integer")
    if version not in schema.SUPPORTED_FORMAT_VERSIONS:
        raise ManifestError(
            f"format_version {version} is not supported by this avstream; expected one of "
            f"{list(schema.SUPPORTED_FORMAT_VERSIONS)}"
        )
    return version


def _tensor(d: Any, path: str) -> TensorSpec:
    d = _obj(d, path)
    name = _str(d, "name", path)
    shape_v = _get(d, "shape", path)
    if not isinstance(shape_v, list) or not shape_v:
        raise ManifestError(f"field '{path}.shape' is {shape_v!r}; expected a non-empty list")
    shape: list[Dim] = []
    for i, dim in enumerate(shape_v):
        ok_int = isinstance(dim, int) and not isinstance(dim, bool) and dim >= 1
        if not (ok_int or (isinstance(dim, str) and dim)):
            raise ManifestError(f"field '{path}.shape[{i}]' is {dim!r}; expected a size >= 1 or "
                                f"an axis name")
        shape.append(dim)
    if shape[0] != schema.BATCH_AXIS:
        raise ManifestError(f"field '{path}.shape[0]' is {shape[0]!r}; expected the dynamic "
                            f"axis {schema.BATCH_AXIS!r}")
    return TensorSpec(name=name, shape=tuple(shape), dtype=_str(d, "dtype", path, DTYPES))


def _tensors(d: Mapping[str, Any], key: str, path: str, names: tuple[str, ...]) -> tuple[TensorSpec, ...]:
    v = _get(d, key, path)
    if not isinstance(v, list):
        raise ManifestError(f"field '{path}.{key}' is {v!r}; expected a list")
    specs = tuple(_tensor(t, f"{path}.{key}[{i}]") for i, t in enumerate(v))
    got = tuple(t.name for t in specs)
    if got != names:
        raise ManifestError(f"field '{path}.{key}' names {list(got)}; expected {list(names)}")
    return specs


def _graph(d: Any, name: str) -> GraphSpec:
    path = f"graphs.{name}"
    d = _obj(d, path)
    in_names, out_names = schema.GRAPH_IO[name]
    return GraphSpec(
        file=_file_name(_get(d, "file", path), f"{path}.file"),
        inputs=_tensors(d, "inputs", path, in_names),
        outputs=_tensors(d, "outputs", path, out_names),
        precision=_str(d, "precision", path, PRECISIONS),
    )


def _classes(d: Mapping[str, Any]) -> tuple[str, ...]:
    v = _get(d, "classes", "")
    if not isinstance(v, list) or not v or not all(isinstance(c, str) and c for c in v):
        raise ManifestError(f"field 'classes' is {v!r}; expected a non-empty list of names")
    if len(set(v)) != len(v):
        raise ManifestError(f"field 'classes' lists duplicates: {v}")
    return tuple(v)


def _quantization(v: Any) -> Quantization | None:
    if v is None:
        return None
    p = "quantization"
    d = _obj(v, p)
    graphs = _get(d, "graphs", p)
    if not isinstance(graphs, list) or not all(g in schema.GRAPHS for g in graphs):
        raise ManifestError(f"field 'quantization.graphs' is {graphs!r}; expected names from "
                            f"{list(schema.GRAPHS)}")
    return Quantization(
        method=_str(d, "method", p),
        graphs=tuple(graphs),
        kept_fp32=_str(d, "kept_fp32", p),
        calibration_windows=_int(d, "calibration_windows", p, minimum=0),
        calibration_split=_str(d, "calibration_split", p),
        evaluation_split=_str(d, "evaluation_split", p),
        evaluation_windows=_int(d, "evaluation_windows", p, minimum=0),
        label_agreement=_number(d, "label_agreement", p),
        max_abs_diff=_number(d, "max_abs_diff", p),
        accuracy_fp32=_float(d, "accuracy_fp32", p, optional=True),
        accuracy_variant=_float(d, "accuracy_variant", p, optional=True),
        accuracy_change=_float(d, "accuracy_change", p, optional=True),
    )


def _export(v: Any) -> ExportInfo:
    p = "export"
    d = _obj(v, p)
    exporters = _obj(_get(d, "exporters", p), f"{p}.exporters")
    known = {"opset", "exporter", "exporters", "created_utc", "check"}
    versions = {k: str(x) for k, x in d.items() if k not in known}
    check = d.get("check", {})
    return ExportInfo(
        opset=_int(d, "opset", p),
        exporter=_str(d, "exporter", p),
        exporters=MappingProxyType({str(k): str(x) for k, x in exporters.items()}),
        versions=MappingProxyType(versions),
        created_utc=_str(d, "created_utc", p),
        check=_frozen(_obj(check, f"{p}.check")),
    )


def _provenance(v: Any) -> Provenance:
    p = "provenance"
    d = _obj(v, p)
    return Provenance(
        checkpoint=_str(d, "checkpoint", p),
        checkpoint_sha256=_str(d, "checkpoint_sha256", p),
        step=_str(d, "step", p),
        config=_frozen(_obj(_get(d, "config", p), f"{p}.config")),
        training_data=_frozen(_obj(_get(d, "training_data", p), f"{p}.training_data")),
        metrics=_frozen(_obj(_get(d, "metrics", p), f"{p}.metrics")),
    )


def _check_consistency(m: Manifest) -> None:
    """The graphs' declared shapes must agree with the audio/video settings the daemon uses."""
    a, v = m.audio, m.video
    if a.window_samples != round(a.sample_rate * a.window_seconds):
        raise ManifestError(f"audio.window_samples={a.window_samples} disagrees with "
                            f"audio.sample_rate={a.sample_rate} x audio.window_seconds="
                            f"{a.window_seconds}")
    expected = {
        (schema.AUDIO_GRAPH, schema.WAVEFORM): (schema.BATCH_AXIS, a.channels, a.window_samples),
        (schema.FRAME_GRAPH, schema.FRAMES): (schema.BATCH_AXIS, v.frame_height, v.frame_width, 3),
    }
    for (graph, tensor), shape in expected.items():
        spec = next(t for t in m.graphs[graph].inputs if t.name == tensor)
        if spec.shape != shape:
            raise ManifestError(f"graphs.{graph} input '{tensor}' has shape {list(spec.shape)} but "
                                f"the audio/video settings imply {list(shape)}")
    head_ff = next(t for t in m.graphs[schema.HEAD_GRAPH].inputs if t.name == schema.FRAME_FEATURES)
    if len(head_ff.shape) != 3 or head_ff.shape[1] != v.frames_per_window:
        raise ManifestError(f"graphs.head input 'frame_features' has shape {list(head_ff.shape)}; "
                            f"expected [batch, video.frames_per_window={v.frames_per_window}, dim]")
    for name, g in m.graphs.items():
        if g.file not in m.files:
            raise ManifestError(f"graphs.{name}.file {g.file!r} is not listed in 'files'")


def _calibration(v: Any) -> Mapping[str, float]:
    """Optional (bundles before it have none): output name -> temperature > 0."""
    d = _obj(v, "calibration")
    out = {}
    for name in d:
        t = _number(d, name, "calibration")
        if not t > 0:
            raise ManifestError(f"field 'calibration.{name}' is {t!r}; expected a temperature > 0")
        out[str(name)] = t
    return MappingProxyType(out)


def parse_manifest(d: Any) -> Manifest:
    """A decoded manifest.json -> Manifest, or ManifestError naming the first bad field."""
    version = check_format(d)
    audio_d = _obj(_get(d, "audio", ""), "audio")
    video_d = _obj(_get(d, "video", ""), "video")
    graphs_d = _obj(_get(d, "graphs", ""), "graphs")
    if set(graphs_d) != set(schema.GRAPHS):
        raise ManifestError(f"field 'graphs' has {sorted(graphs_d)}; expected exactly "
                            f"{list(schema.GRAPHS)}")
    files_d = _obj(_get(d, "files", ""), "files")
    files: dict[str, str] = {}
    for name, digest in files_d.items():
        _file_name(name, f"files[{name!r}]")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ManifestError(f"field 'files[{name!r}]' is {digest!r}; expected a sha256 hex digest")
        files[name] = digest
    window_seconds = _number(audio_d, "window_seconds", "audio")
    if window_seconds <= 0:
        raise ManifestError(f"field 'audio.window_seconds' is {window_seconds!r}; expected > 0")
    m = Manifest(
        format=schema.FORMAT_NAME,
        format_version=version,
        variant=_str(d, "variant", "", schema.VARIANTS),
        classes=_classes(d),
        audio=AudioSpec(
            sample_rate=_int(audio_d, "sample_rate", "audio"),
            channels=_int(audio_d, "channels", "audio"),
            window_samples=_int(audio_d, "window_samples", "audio"),
            window_seconds=window_seconds,
        ),
        video=VideoSpec(
            frames_per_window=_int(video_d, "frames_per_window", "video"),
            fps=_int(video_d, "fps", "video"),
            frame_width=_int(video_d, "frame_width", "video"),
            frame_height=_int(video_d, "frame_height", "video"),
            pixel_format=_str(video_d, "pixel_format", "video", (schema.PIXEL_FORMAT,)),
            layout=_str(video_d, "layout", "video", (VIDEO_LAYOUT,)),
        ),
        graphs=MappingProxyType({name: _graph(graphs_d[name], name) for name in schema.GRAPHS}),
        files=MappingProxyType(files),
        export=_export(_get(d, "export", "")),
        provenance=_provenance(_get(d, "provenance", "")),
        quantization=_quantization(_get(d, "quantization", "")),
        calibration=_calibration(d.get("calibration", {})),
    )
    _check_consistency(m)
    return m
