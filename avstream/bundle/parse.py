"""manifest.json -> ``Manifest``, section by section, through the typed getters of
``avstream.bundle.fields`` (each error names the dotted field path). Field types and the IO names
are checked here; whether the numbers agree with each other is checked once, in
``avstream.bundle.format.stream_format``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from avstream.bundle import schema
from avstream.bundle.fields import (
    file_name,
    frozen,
    get,
    integer,
    number,
    obj,
    real,
    string,
)
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


def check_format(d: Any) -> int:
    """Format name and version first: a future version may lay out everything else differently."""
    d = obj(d, "(top level)")
    fmt = get(d, "format", "")
    if fmt != schema.FORMAT_NAME:
        raise ManifestError(f"format is {fmt!r}; expected {schema.FORMAT_NAME!r}")
    version = get(d, "format_version", "")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ManifestError(f"format_version is {version!r}; expected an integer")
    if version not in schema.SUPPORTED_FORMAT_VERSIONS:
        raise ManifestError(
            f"format_version {version} is not supported by this avstream; expected one of "
            f"{list(schema.SUPPORTED_FORMAT_VERSIONS)}"
        )
    return version


def _tensor(d: Any, path: str) -> TensorSpec:
    d = obj(d, path)
    name = string(d, "name", path)
    shape_v = get(d, "shape", path)
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
    return TensorSpec(name=name, shape=tuple(shape), dtype=string(d, "dtype", path, DTYPES))


def _tensors(d: Mapping[str, Any], key: str, path: str, names: tuple[str, ...]) -> tuple[TensorSpec, ...]:
    v = get(d, key, path)
    if not isinstance(v, list):
        raise ManifestError(f"field '{path}.{key}' is {v!r}; expected a list")
    specs = tuple(_tensor(t, f"{path}.{key}[{i}]") for i, t in enumerate(v))
    got = tuple(t.name for t in specs)
    if got != names:
        raise ManifestError(f"field '{path}.{key}' names {list(got)}; expected {list(names)}")
    return specs


def _graph(d: Any, name: str, path: str = "") -> GraphSpec:
    path = path or f"graphs.{name}"
    d = obj(d, path)
    in_names, out_names = schema.GRAPH_IO[name]
    return GraphSpec(
        file=file_name(get(d, "file", path), f"{path}.file"),
        inputs=_tensors(d, "inputs", path, in_names),
        outputs=_tensors(d, "outputs", path, out_names),
        precision=string(d, "precision", path, PRECISIONS),
    )


def _classes(d: Mapping[str, Any]) -> tuple[str, ...]:
    v = get(d, "classes", "")
    if not isinstance(v, list) or not v or not all(isinstance(c, str) and c for c in v):
        raise ManifestError(f"field 'classes' is {v!r}; expected a non-empty list of names")
    if len(set(v)) != len(v):
        raise ManifestError(f"field 'classes' lists duplicates: {v}")
    return tuple(v)


def _variants(d: Mapping[str, Any], main: str) -> Mapping[str, PrecisionVariant]:
    v = d.get("variants", {})
    out: dict[str, PrecisionVariant] = {}
    for precision, spec in obj(v, "variants").items():
        path = f"variants.{precision}"
        if precision not in PRECISIONS or precision == main:
            raise ManifestError(f"field 'variants' names {precision!r}; expected one of "
                                f"{[p for p in PRECISIONS if p != main]} (not the main variant)")
        spec = obj(spec, path)
        graphs = obj(get(spec, "graphs", path), f"{path}.graphs")
        if set(graphs) != set(schema.GRAPHS):
            raise ManifestError(f"field '{path}.graphs' has {sorted(graphs)}; expected exactly "
                                f"{list(schema.GRAPHS)}")
        quantization = _quantization(get(spec, "quantization", path), f"{path}.quantization")
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
    d = obj(v, p)
    graphs = get(d, "graphs", p)
    if not isinstance(graphs, list) or not all(g in schema.GRAPHS for g in graphs):
        raise ManifestError(f"field '{p}.graphs' is {graphs!r}; expected names from "
                            f"{list(schema.GRAPHS)}")
    return Quantization(
        method=string(d, "method", p),
        graphs=tuple(graphs),
        kept_fp32=string(d, "kept_fp32", p),
        calibration_windows=integer(d, "calibration_windows", p, minimum=0),
        calibration_split=string(d, "calibration_split", p),
        evaluation_split=string(d, "evaluation_split", p),
        evaluation_windows=integer(d, "evaluation_windows", p, minimum=0),
        label_agreement=number(d, "label_agreement", p),
        max_abs_diff=number(d, "max_abs_diff", p),
        accuracy_fp32=real(d, "accuracy_fp32", p, optional=True),
        accuracy_variant=real(d, "accuracy_variant", p, optional=True),
        accuracy_change=real(d, "accuracy_change", p, optional=True),
    )


def _export(v: Any) -> ExportInfo:
    p = "export"
    d = obj(v, p)
    exporters = obj(get(d, "exporters", p), f"{p}.exporters")
    known = {"opset", "exporter", "exporters", "created_utc", "check"}
    versions = {k: str(x) for k, x in d.items() if k not in known}
    check = d.get("check", {})
    return ExportInfo(
        opset=integer(d, "opset", p),
        exporter=string(d, "exporter", p),
        exporters=MappingProxyType({str(k): str(x) for k, x in exporters.items()}),
        versions=MappingProxyType(versions),
        created_utc=string(d, "created_utc", p),
        check=frozen(obj(check, f"{p}.check")),
    )


def _provenance(v: Any) -> Provenance:
    p = "provenance"
    d = obj(v, p)
    return Provenance(
        checkpoint=string(d, "checkpoint", p),
        checkpoint_sha256=string(d, "checkpoint_sha256", p),
        step=string(d, "step", p),
        config=frozen(obj(get(d, "config", p), f"{p}.config")),
        training_data=frozen(obj(get(d, "training_data", p), f"{p}.training_data")),
        metrics=frozen(obj(get(d, "metrics", p), f"{p}.metrics")),
    )


def _calibration(v: Any) -> Mapping[str, float]:
    """Optional (bundles before it have none): output name -> temperature > 0."""
    d = obj(v, "calibration")
    out = {}
    for name in d:
        t = number(d, name, "calibration")
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
    d = obj(v, p)
    by_graph = obj(get(d, "median_ms", p), f"{p}.median_ms")
    if not set(by_graph) <= set(schema.GRAPHS):
        raise ManifestError(f"field '{p}.median_ms' has {sorted(by_graph)}; expected names from "
                            f"{list(schema.GRAPHS)}")
    median_ms: dict[str, Mapping[str, float]] = {}
    for graph, by_precision in by_graph.items():
        where = f"{p}.median_ms.{graph}"
        row = {}
        for precision in obj(by_precision, where):
            ms = number(by_precision, precision, where)
            if precision not in PRECISIONS or not ms > 0:
                raise ManifestError(f"field '{where}.{precision}' is {ms!r}; expected "
                                    f"milliseconds > 0 for one of {list(PRECISIONS)}")
            row[str(precision)] = ms
        median_ms[str(graph)] = MappingProxyType(row)
    return Timings(provider=string(d, "provider", p), cpu=string(d, "cpu", p),
                   threads=integer(d, "threads", p), batch=integer(d, "batch", p),
                   runs=integer(d, "runs", p), median_ms=MappingProxyType(median_ms))


def parse_manifest(d: Any) -> Manifest:
    """A decoded manifest.json -> Manifest, or ManifestError naming the first bad field."""
    version = check_format(d)
    audio_d = obj(get(d, "audio", ""), "audio")
    video_d = obj(get(d, "video", ""), "video")
    graphs_d = obj(get(d, "graphs", ""), "graphs")
    if set(graphs_d) != set(schema.GRAPHS):
        raise ManifestError(f"field 'graphs' has {sorted(graphs_d)}; expected exactly "
                            f"{list(schema.GRAPHS)}")
    files_d = obj(get(d, "files", ""), "files")
    files: dict[str, str] = {}
    for name, digest in files_d.items():
        file_name(name, f"files[{name!r}]")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ManifestError(f"field 'files[{name!r}]' is {digest!r}; expected a sha256 hex digest")
        files[name] = digest
    window_seconds = number(audio_d, "window_seconds", "audio")
    if window_seconds <= 0:
        raise ManifestError(f"field 'audio.window_seconds' is {window_seconds!r}; expected > 0")
    variant = string(d, "variant", "", schema.PRECISIONS)
    m = Manifest(
        format=schema.FORMAT_NAME,
        format_version=version,
        variant=variant,
        classes=_classes(d),
        audio=AudioSpec(
            sample_rate=integer(audio_d, "sample_rate", "audio"),
            channels=integer(audio_d, "channels", "audio"),
            window_samples=integer(audio_d, "window_samples", "audio"),
            window_seconds=window_seconds,
        ),
        video=VideoSpec(
            frames_per_window=integer(video_d, "frames_per_window", "video"),
            fps=integer(video_d, "fps", "video"),
            frame_width=integer(video_d, "frame_width", "video"),
            frame_height=integer(video_d, "frame_height", "video"),
            pixel_format=string(video_d, "pixel_format", "video", (schema.PIXEL_FORMAT,)),
            layout=string(video_d, "layout", "video", (VIDEO_LAYOUT,)),
        ),
        graphs=MappingProxyType({name: _graph(graphs_d[name], name) for name in schema.GRAPHS}),
        files=MappingProxyType(files),
        export=_export(get(d, "export", "")),
        provenance=_provenance(get(d, "provenance", "")),
        quantization=_quantization(get(d, "quantization", "")),
        calibration=_calibration(d.get("calibration", {})),
        variants=_variants(d, variant),
        timings=_timings(d.get("timings")),
        frontend=schema.FRONTEND_V1 if version < 2 else string(d, "frontend", "", schema.FRONTENDS),
    )
    return m
