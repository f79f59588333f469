"""manifest.json -> ``Manifest``: small typed getters, each naming the dotted field path in its
error (ManifestError). Field types and the IO names are checked here; whether the numbers agree
with each other is checked once, in ``avstream.bundle.format.stream_format``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from avstream.bundle import schema
from avstream.bundle.manifest import (
    DTYPES,
    PRECISIONS,
    VIDEO_LAYOUT,
    AudioSpec,
    Dim,
    ExportInfo,
    GraphSpec,
    Manifest,
    ManifestError,
    PrecisionVariant,
    Provenance,
    Quantization,
    TensorSpec,
    Timings,
    VideoSpec,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _frozen(v: Any) -> Any:
    if isinstance(v, Mapping):
        return MappingProxyType({k: _frozen(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    return v


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


def _graph(d: Any, name: str, path: str = "") -> GraphSpec:
    path = path or f"graphs.{name}"
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


def _variants(d: Mapping[str, Any], main: str) -> Mapping[str, PrecisionVariant]:
    v = d.get("variants", {})
    out: dict[str, PrecisionVariant] = {}
    for precision, spec in _obj(v, "variants").items():
        path = f"variants.{precision}"
        if precision not in PRECISIONS or precision == main:
            raise ManifestError(f"field 'variants' names {precision!r}; expected one of "
                                f"{[p for p in PRECISIONS if p != main]} (not the main variant)")
        spec = _obj(spec, path)
        graphs = _obj(_get(spec, "graphs", path), f"{path}.graphs")
        if set(graphs) != set(schema.GRAPHS):
            raise ManifestError(f"field '{path}.graphs' has {sorted(graphs)}; expected exactly "
                                f"{list(schema.GRAPHS)}")
        quantization = _quantization(_get(spec, "quantization", path), f"{path}.quantization")
        if quantization is None:
            raise ManifestError(f"field '{path}.quantization' is null; expected the variant's "
                                f"measured agreement with PyTorch")
        out[precision] = PrecisionVariant(
            graphs=MappingProxyType({n: _graph(graphs[n], n, f"{path}.graphs.{n}")
                                     for n in schema.GRAPHS}),
            quantization=quantization)
    return MappingProxyType(out)


def _quantization(v: Any, p: str = "quantization") -> Quantization | None:
    if v is None:
        return None
    d = _obj(v, p)
    graphs = _get(d, "graphs", p)
    if not isinstance(graphs, list) or not all(g in schema.GRAPHS for g in graphs):
        raise ManifestError(f"field '{p}.graphs' is {graphs!r}; expected names from "
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


def _timings(v: Any) -> Timings | None:
    """Optional (bundles exported before it have none): graph -> precision -> median ms > 0.
    Whether the precisions named are shipped is checked with the rest in format.py."""
    if v is None:
        return None
    p = "timings"
    d = _obj(v, p)
    by_graph = _obj(_get(d, "median_ms", p), f"{p}.median_ms")
    if not set(by_graph) <= set(schema.GRAPHS):
        raise ManifestError(f"field '{p}.median_ms' has {sorted(by_graph)}; expected names from "
                            f"{list(schema.GRAPHS)}")
    median_ms: dict[str, Mapping[str, float]] = {}
    for graph, by_precision in by_graph.items():
        where = f"{p}.median_ms.{graph}"
        row = {}
        for precision in _obj(by_precision, where):
            ms = _number(by_precision, precision, where)
            if precision not in PRECISIONS or not ms > 0:
                raise ManifestError(f"field '{where}.{precision}' is {ms!r}; expected "
                                    f"milliseconds > 0 for one of {list(PRECISIONS)}")
            row[str(precision)] = ms
        median_ms[str(graph)] = MappingProxyType(row)
    return Timings(provider=_str(d, "provider", p), cpu=_str(d, "cpu", p),
                   threads=_int(d, "threads", p), batch=_int(d, "batch", p),
                   runs=_int(d, "runs", p), median_ms=MappingProxyType(median_ms))


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
    variant = _str(d, "variant", "", schema.PRECISIONS)
    m = Manifest(
        format=schema.FORMAT_NAME,
        format_version=version,
        variant=variant,
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
        variants=_variants(d, variant),
        timings=_timings(d.get("timings")),
        frontend=schema.FRONTEND_V1 if version < 2 else _str(d, "frontend", "", schema.FRONTENDS),
    )
    return m
