"""The graphs of one precision (fp32, fp16 for CUDA, static int8 for CPU), how they are shipped,
and the record of what a reduced precision costs, measured against PyTorch fp32.

A bundle has a main variant (``graphs``) and may carry others (``variants`` in the manifest):
``python -m export CKPT OUT --precisions fp32,int8,fp16`` writes all three into one bundle, each
extra one with its own measured agreement, and the daemon's ``--precision`` picks among them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import onnx

from avstream.bundle import schema
from avstream.bundle.loader import load_bundle, sha256_file
from avstream.bundle.manifest import GraphSpec, PrecisionVariant, Quantization
from export.graphs import tensor_specs
from export.onnx_export import ExportedGraph, export_graph, export_graphs
from export.parity import BundleRunner, ParityReport, Window, compare
from export.quantize import (
    FP16_METHOD,
    INT8_METHOD,
    KEPT_FP32,
    REDUCED_GRAPHS,
    ArrayReader,
    calibration_batches,
    frontend_nodes,
    quantize_int8,
)
from training.config import ModelConfig
from training.model import AVSceneNet

log = logging.getLogger(__name__)

CALIBRATION_SPLIT = "train"


def ship_graph(src: Path, dst: Path, name: str) -> None:
    """Copy a graph into the bundle without the exporter's per-node debug metadata."""
    model = onnx.load(str(src))
    for node in model.graph.node:
        del node.metadata_props[:]
    model.doc_string = f"avstream bundle graph '{name}'"
    onnx.save(model, str(dst))


def variant_graphs(variant: str, model: AVSceneNet, work: Path, opset: int,
                   exporters: Sequence[str], windows: Sequence[Window]) -> dict[str, ExportedGraph]:
    """Graph name -> the exported (and for int8 quantized) graph to ship."""
    if variant == "fp16":  # reduced graphs exported straight from the half-precision model
        work.mkdir(parents=True, exist_ok=True)
        return {name: export_graph(name, model, work / f"{name}.onnx", opset, exporters,
                                   precision="fp16" if name in REDUCED_GRAPHS else "fp32")
                for name in schema.GRAPHS}
    graphs = export_graphs(model, work / "fp32", opset, exporters)
    if variant == "int8":
        keep = frontend_nodes(onnx.load(str(graphs[schema.AUDIO_GRAPH].path)))
        log.info("int8: keeping %d audio front-end nodes in fp32", len(keep))
        batches = calibration_batches(windows)
        for name in REDUCED_GRAPHS:
            dst = work / f"{name}.int8.onnx"
            t0 = time.perf_counter()
            reader = ArrayReader(schema.GRAPH_IO[name][0][0], batches[name])
            quantize_int8(graphs[name].path, dst, reader,
                          keep if name == schema.AUDIO_GRAPH else [])
            log.info("int8 graph %s in %.1f s", name, time.perf_counter() - t0)
            graphs[name] = dataclasses.replace(graphs[name], path=dst, precision="int8")
    return graphs


def quantization(variant: str, report: ParityReport, calibration: int, eval_split: str) -> Quantization:
    return Quantization(
        method=FP16_METHOD if variant == "fp16" else INT8_METHOD,
        graphs=REDUCED_GRAPHS,
        kept_fp32=KEPT_FP32,
        calibration_windows=calibration if variant == "int8" else 0,
        calibration_split=CALIBRATION_SPLIT if variant == "int8" else "none",
        evaluation_split=eval_split,
        evaluation_windows=report.windows,
        label_agreement=report.label_agreement,
        max_abs_diff=report.outputs["final"].max_abs_diff,
        accuracy_fp32=report.accuracy_torch,
        accuracy_variant=report.accuracy_bundle,
        accuracy_change=report.accuracy_change,
    )


def ship_variant(staging: Path, precision: str, model: AVSceneNet, cfg: ModelConfig, work: Path,
                 opset: int, exporters: Sequence[str], calibration: Sequence[Window]
                 ) -> tuple[dict[str, GraphSpec], dict[str, str], dict[str, ExportedGraph]]:
    """Export ``precision``'s graphs into ``staging`` as ``<graph>.<precision>.onnx``: their
    specs, the files' sha256, and the exported graphs."""
    graphs = variant_graphs(precision, model, work, opset, exporters, calibration)
    specs: dict[str, GraphSpec] = {}
    files: dict[str, str] = {}
    for name, g in graphs.items():
        dst = staging / f"{name}.{precision}.onnx"
        ship_graph(g.path, dst, name)
        files[dst.name] = sha256_file(dst)
        inputs, outputs = tensor_specs(name, cfg)
        specs[name] = GraphSpec(file=dst.name, inputs=inputs, outputs=outputs,
                                precision=g.precision)
    return specs, files, graphs


def measure_variant(staging: Path, precision: str, specs: dict[str, GraphSpec],
                    model: AVSceneNet, evaluation: Sequence[Window], calibration: int,
                    eval_split: str) -> tuple[PrecisionVariant, ParityReport]:
    """Run the daemon's engine at ``precision`` on the staged bundle against PyTorch."""
    bundle = load_bundle(staging)
    c = compare(BundleRunner(bundle, precision=precision), model, evaluation)
    report = ParityReport(
        bundle=staging, checkpoint=staging, variant=precision, windows=c.windows,
        outputs=c.outputs, checkpoint_matches=True, labelled_windows=c.labelled_windows,
        accuracy_torch=c.accuracy_torch, accuracy_bundle=c.accuracy_bundle)
    return PrecisionVariant(specs, quantization(precision, report, calibration, eval_split)), report
