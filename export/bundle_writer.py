"""Checkpoint -> verified bundle directory: export, convert, measure, write the manifest last.

The bundle is assembled in a staging folder beside OUT_DIR and renamed into place only after
it verified (load_bundle) and matched PyTorch, so a failed export never leaves a half bundle
that the daemon could pick up. Node metadata of the exporter (stack traces with local paths)
is stripped from the shipped graphs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import onnxscript
import torch

from avstream.bundle import schema
from avstream.bundle.loader import load_bundle, sha256_file
from avstream.bundle.manifest import (
    VIDEO_LAYOUT,
    AudioSpec,
    ExportInfo,
    GraphSpec,
    Manifest,
    PrecisionVariant,
    Provenance,
    Quantization,
    Timings,
    VideoSpec,
)
from avstream.errors import AvstreamError
from avstream.timebase import VIDEO_FPS, WINDOW_SECONDS
from export.graphs import AUDIO_CHANNELS, tensor_specs
from export.onnx_export import (
    DEFAULT_OPSET,
    EXPORTERS,
    ExportedGraph,
    ExportError,
)
from export.parity import (
    FP32_PROB_ATOL,
    BundleRunner,
    ParityReport,
    Window,
    compare,
    random_windows,
)
from export.quantize import load_split_windows
from export.timing import time_graphs
from export.variants import (
    CALIBRATION_SPLIT,
    measure_variant,
    ship_graph,
    ship_variant,
    variant_graphs,
)
from export.variants import quantization as quantization_record
from training.checkpoint import Checkpoint, load_checkpoint
from training.model import AVSceneNet

log = logging.getLogger(__name__)

CHECK_WINDOWS = 8
"""Random windows of the fp32 self-check (and of the fp16 check when no data is given)."""
DEFAULT_CALIBRATION_WINDOWS = 64
DEFAULT_EVALUATION_WINDOWS = 200
EVALUATION_SPLIT = "evaluate"
RANDOM_SPLIT = "random"


class ExportInputError(AvstreamError):
    """A checkpoint, output folder or option the user gave that cannot be used (exit 2)."""


@dataclass(frozen=True)
class ExportOptions:
    variant: str = "fp32"
    opset: int = DEFAULT_OPSET
    data_dir: Path | None = None
    """TAU-layout root: int8 calibrates on its train split; int8/fp16 are measured on its
    evaluate split (fp16 without it: on random windows)."""
    calibration_windows: int = DEFAULT_CALIBRATION_WINDOWS
    evaluation_windows: int = DEFAULT_EVALUATION_WINDOWS
    cache_dir: Path | None = None
    """Clip cache for the data windows (default: <data_dir>/.avstream-cache)."""
    force: bool = False
    """Replace an existing bundle at OUT_DIR."""
    exporters: tuple[str, ...] = EXPORTERS
    extra: tuple[str, ...] = ()
    """Further precisions shipped beside ``variant`` in the same bundle (manifest ``variants``),
    each measured against PyTorch like the main one."""

    def __post_init__(self) -> None:
        for v in (self.variant, *self.extra):
            if v not in schema.PRECISIONS:
                raise ExportInputError(f"precision {v!r}; expected one of {list(schema.PRECISIONS)}")
        if self.variant in self.extra or len(set(self.extra)) != len(self.extra):
            raise ExportInputError(f"precisions {[self.variant, *self.extra]}; expected each once")
        if "int8" in (self.variant, *self.extra) and self.data_dir is None:
            raise ExportInputError("--int8 needs --calibrate DATA_DIR: static quantization is "
                                   "calibrated on real windows of the training data")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise ExportInputError(f"{self.data_dir}: no such data folder; expected a TAU-layout "
                                   f"root with evaluation_setup/")
        if self.calibration_windows < 1 or self.evaluation_windows < 1:
            raise ExportInputError(f"calibration_windows={self.calibration_windows}, "
                                   f"evaluation_windows={self.evaluation_windows}; expected >= 1")
        if self.opset < 17:
            raise ExportInputError(f"opset {self.opset}; expected >= 17")

    @property
    def cache(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir)
        if self.data_dir is None:
            raise ValueError("no cache folder: neither cache_dir nor data_dir is set")
        return Path(self.data_dir) / ".avstream-cache"


@dataclass(frozen=True)
class ExportResult:
    bundle_dir: Path
    manifest: Manifest
    parity: ParityReport
    graphs: Mapping[str, ExportedGraph]
    file_bytes: Mapping[str, int]
    seconds: float


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint, or one line saying why not (a user's file: exit 2, no traceback)."""
    try:
        return load_checkpoint(Path(path))
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
        text = _one_line(str(e))
        raise ExportInputError(text if text.startswith("checkpoint") else
                               f"checkpoint {path}: cannot be used ({text})") from e
    except OSError as e:
        raise ExportInputError(f"checkpoint {path}: cannot be read ({e.strerror or e})") from e


def _one_line(text: str, limit: int = 400) -> str:
    """torch's unpickling errors span many lines; the CLI promises one."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportInputError(f"{out_dir}: exists and is not a folder; expected a new bundle folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise ExportInputError(f"{out_dir}: folder is not empty; pass --force to replace a "
                                   f"bundle there")
        if not (out_dir / schema.MANIFEST_NAME).is_file():
            raise ExportInputError(f"{out_dir}: not empty and holds no {schema.MANIFEST_NAME}; "
                                   f"--force replaces only a bundle folder")


def _json_safe(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, torch.Tensor | np.ndarray | np.generic):
        return v.tolist()
    if v is None or isinstance(v, bool | int | float | str):
        return v
    log.warning("manifest: %s value %r written as its text", type(v).__name__, v)
    return str(v)


def _manifest(ckpt: Checkpoint, ckpt_path: Path, ckpt_sha: str, variant: str,
              graphs: Mapping[str, ExportedGraph], precisions: Mapping[str, str],
              files: Mapping[str, str], opset: int, check: Mapping[str, Any],
              quantization: Quantization | None,
              variants: Mapping[str, PrecisionVariant] | None = None,
              timings: Timings | None = None) -> Manifest:
    cfg = ckpt.config
    specs = {}
    for name in schema.GRAPHS:
        inputs, outputs = tensor_specs(name, cfg)
        specs[name] = GraphSpec(file=f"{name}.onnx", inputs=inputs, outputs=outputs,
                                precision=precisions[name])
    exporters = {name: g.exporter for name, g in graphs.items()}
    return Manifest(
        format=schema.FORMAT_NAME,
        format_version=schema.FORMAT_VERSION,
        variant=variant,
        classes=tuple(cfg.classes),
        audio=AudioSpec(sample_rate=cfg.sample_rate, channels=AUDIO_CHANNELS,
                        window_samples=cfg.window_samples, window_seconds=float(WINDOW_SECONDS)),
        video=VideoSpec(frames_per_window=cfg.frames_per_window, fps=VIDEO_FPS,
                        frame_width=cfg.frame_size, frame_height=cfg.frame_size,
                        pixel_format=schema.PIXEL_FORMAT, layout=VIDEO_LAYOUT),
        graphs=specs,
        files=dict(files),
        export=ExportInfo(
            opset=opset,
            exporter="dynamo" if set(exporters.values()) == {"dynamo"} else "mixed",
            exporters=exporters,
            versions={"torch": torch.__version__, "onnx": onnx.__version__,
                      "onnxscript": onnxscript.__version__,
                      "onnxruntime": onnxruntime.__version__},
            created_utc=datetime.now(UTC).replace(microsecond=0).isoformat(),
            check=dict(check),
        ),
        provenance=Provenance(
            checkpoint=ckpt_path.name, checkpoint_sha256=ckpt_sha, step=ckpt.step,
            config=_json_safe(cfg.to_dict()), training_data=_json_safe(ckpt.data),
            metrics=_json_safe(ckpt.metrics),
        ),
        quantization=quantization,
        variants=dict(variants or {}),
        calibration=ckpt.temperatures.to_dict() if ckpt.calibration else {},
        timings=timings,
        frontend=cfg.frontend,
    )


def _write_manifest(root: Path, manifest: Manifest) -> None:
    tmp = root / (schema.MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / schema.MANIFEST_NAME)


def _measure(staging: Path, ckpt_path: Path, model: AVSceneNet,
             windows: Sequence[Window]) -> ParityReport:
    bundle = load_bundle(staging)
    c = compare(BundleRunner(bundle), model, windows)
    return ParityReport(
        bundle=staging, checkpoint=ckpt_path,
        variant=bundle.variant, windows=c.windows, outputs=c.outputs, checkpoint_matches=True,
        labelled_windows=c.labelled_windows, accuracy_torch=c.accuracy_torch,
        accuracy_bundle=c.accuracy_bundle,
    )


def export_bundle(ckpt_path: Path, out_dir: Path, options: ExportOptions) -> ExportResult:
    """Export CHECKPOINT as a verified bundle in out_dir (see module docstring)."""
    t_start = time.perf_counter()
    ckpt_path, out_dir = Path(ckpt_path), Path(out_dir)
    ckpt = read_checkpoint(ckpt_path)
    _prepare_out_dir(out_dir, options.force)
    model = ckpt.build_model().eval()
    cfg = ckpt.config
    variant = options.variant

    calibration: list[Window] = []
    evaluation: list[Window] = list(random_windows(cfg, CHECK_WINDOWS))
    eval_split = RANDOM_SPLIT
    if options.data_dir is not None:
        if "int8" in (variant, *options.extra):
            calibration = list(load_split_windows(options.data_dir, CALIBRATION_SPLIT, cfg,
                                                  options.calibration_windows, options.cache))
        evaluation = list(load_split_windows(options.data_dir, EVALUATION_SPLIT, cfg,
                                             options.evaluation_windows, options.cache))
        eval_split = EVALUATION_SPLIT

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    work = out_dir.parent / f".{out_dir.name}.work-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    try:
        staging.mkdir()
        graphs = variant_graphs(variant, model, work, options.opset, options.exporters,
                                calibration)
        files: dict[str, str] = {}
        for name, g in graphs.items():
            dst = staging / f"{name}.onnx"
            ship_graph(g.path, dst, name)
            files[dst.name] = sha256_file(dst)
        precisions = {name: g.precision for name, g in graphs.items()}
        ckpt_sha = sha256_file(ckpt_path)
        check = {"windows": 0, "source": eval_split}
        manifest = _manifest(ckpt, ckpt_path, ckpt_sha, variant, graphs, precisions, files,
                             options.opset, check, None)
        _write_manifest(staging, manifest)

        report = _measure(staging, ckpt_path, model, evaluation)
        log.info("%s", report.summary())
        if variant == "fp32" and report.max_abs_diff > FP32_PROB_ATOL:
            raise ExportError(f"fp32 bundle differs from torch by {report.max_abs_diff:.3g} "
                              f"(allowed {FP32_PROB_ATOL:g}): {report.summary()}")
        check = {"windows": report.windows, "source": eval_split,
                 "max_abs_diff": report.max_abs_diff,
                 "label_agreement": report.label_agreement}
        quantization = None if variant == "fp32" else quantization_record(
            variant, report, len(calibration), eval_split)
        variants: dict[str, PrecisionVariant] = {}
        for extra in options.extra:
            specs, extra_files, _ = ship_variant(staging, extra, model, cfg, work / extra,
                                                 options.opset, options.exporters, calibration)
            files.update(extra_files)
            variants[extra] = PrecisionVariant(specs, quantization_record(
                extra, report, len(calibration), eval_split))  # replaced once measured below
            _write_manifest(staging, _manifest(ckpt, ckpt_path, ckpt_sha, variant, graphs,
                                               precisions, files, options.opset, check,
                                               quantization, variants))
            variants[extra], extra_report = measure_variant(
                staging, extra, specs, model, evaluation, len(calibration), eval_split)
            log.info("%s", extra_report.summary())
        timings = time_graphs(load_bundle(staging).precisions())
        manifest = _manifest(ckpt, ckpt_path, ckpt_sha, variant, graphs, precisions, files,
                             options.opset, check, quantization, variants, timings)
        _write_manifest(staging, manifest)
        load_bundle(staging)  # the written manifest must verify as the daemon will verify it
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes = {name: (out_dir / name).stat().st_size for name in files}
    shipped = {name: dataclasses.replace(g, path=out_dir / f"{name}.onnx")
               for name, g in graphs.items()}
    return ExportResult(bundle_dir=out_dir, manifest=manifest, parity=report, graphs=shipped,
                        file_bytes=sizes, seconds=time.perf_counter() - t_start)
