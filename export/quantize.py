"""Reduced precision: static int8 (QDQ) for CPU here; fp16 for CUDA is exported from torch.

Both keep the audio front end (Conv1d STFT, band weighting, dB, min-max scaling) in fp32:
|STFT|^2 overflows fp16, and int8 cannot hold a 100 dB dynamic range. The head (two small GRUs
and three dense layers, well under 1% of the compute) also stays fp32: ORT's static quantizer
has no GRU kernel.

fp16 is not made by onnxruntime.transformers.float16 on the fp32 graph: with a node block list
it still casts the graph input and the blocked nodes' weights and intermediates through fp16
(fp32 islands joined by fp16 tensors, so |STFT|^2 could overflow between them), and its head
conversion crashed ONNX Runtime 1.32's CPU optimiser (segfault). Instead export/graphs.py
exports a half-precision copy of the model whose front end is fp32 by construction.

int8 calibration uses real windows of the training data (never random noise: the activation
ranges of noise are not those of scenes), read through training.data like training itself.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from avstream.bundle import schema
from avstream.timebase import SEGMENTS_PER_CLIP
from export.graphs import FP16_GRAPHS
from export.onnx_export import ExportError
from training.config import ModelConfig

log = logging.getLogger(__name__)

FRONTEND_MODULE = "frontend"
"""Attribute name of AudioFrontend inside AudioBranch: the scope the exporters record."""
NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
REDUCED_GRAPHS: tuple[str, ...] = FP16_GRAPHS
"""Graphs converted to fp16 / int8; the head stays fp32 (see the module docstring)."""
INT8_OPS: tuple[str, ...] = ("Conv", "MatMul", "Gemm")
KEPT_FP32 = ("audio front end (STFT conv, band weights, dB, scaling), pixel normaliser, and the "
             "head graph (GRUs, dense layers)")
FP16_METHOD = ("torch .half() copy exported by torch.onnx; audio front end and pixel normaliser "
               "fp32; float32 graph inputs/outputs")
INT8_METHOD = ("onnxruntime.quantization static QDQ: per-channel int8 weights, uint8 "
               "activations, MinMax calibration; ops " + "/".join(INT8_OPS))
CALIBRATION_BATCH = 8
FRONTEND_REQUIRED_OPS: frozenset[str] = frozenset({"Conv", "MatMul", "Log"})
"""The STFT conv, the band matmul and the dB log: if these are not all found in the front-end
scope, the front end was not located and nothing is converted (never silently)."""


def _scopes(node: onnx.NodeProto) -> list[str]:
    for p in node.metadata_props:
        if p.key == NAME_SCOPES_KEY:
            try:
                value = ast.literal_eval(p.value)
            except (ValueError, SyntaxError):
                return []
            return [str(s) for s in value] if isinstance(value, list) else []
    return []


def _in_frontend(node: onnx.NodeProto) -> bool:
    if any(s.split(".")[-1] == FRONTEND_MODULE for s in _scopes(node)):
        return True  # dynamo exporter: module scopes recorded per node
    return f"/{FRONTEND_MODULE}/" in node.name  # legacy exporter: scope in the node name


def frontend_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the audio graph's front-end nodes, plus scope-less nodes fed only by them.

    The exporter's optimiser can create nodes without scope metadata (folded constants); one
    whose inputs all come from the graph input, initializers or front-end nodes is front end too.
    """
    graph = model.graph
    outside = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    frontend: set[str] = set()
    produced_by_frontend: set[str] = set()
    for node in graph.node:  # ONNX graphs are topologically sorted
        scoped = bool(_scopes(node)) or "/" in node.name
        fed_by_frontend = all(i in outside or i in produced_by_frontend for i in node.input)
        if _in_frontend(node) or (not scoped and node.input and fed_by_frontend
                                  and any(i in produced_by_frontend for i in node.input)):
            frontend.add(node.name)
            produced_by_frontend.update(node.output)
    ops = {n.op_type for n in graph.node if n.name in frontend}
    missing = FRONTEND_REQUIRED_OPS - ops
    if missing:
        raise ExportError(f"audio graph: the front end could not be located (found ops "
                          f"{sorted(ops)}, missing {sorted(missing)}); refusing to convert it")
    return [n.name for n in graph.node if n.name in frontend]


class ArrayReader(CalibrationDataReader):
    """Feeds fixed calibration batches for one graph input; rewindable."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self.input_name = input_name
        self.batches = list(batches)
        self._it: Iterator[np.ndarray] = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._it = iter(self.batches)


def quantize_int8(src: Path, dst: Path, reader: CalibrationDataReader,
                  exclude_nodes: Sequence[str]) -> None:
    """Static QDQ int8 of Conv/MatMul/Gemm, calibrated on the reader's batches."""
    prepared = dst.with_name(dst.stem + ".prepared.onnx")
    # Shape inference only: the dynamo exporter already folded BatchNorm into the convs, and an
    # optimisation pass here could rename the nodes that exclude_nodes refers to.
    quant_pre_process(str(src), str(prepared), skip_optimization=True, skip_symbolic_shape=True)
    names = {n.name for n in onnx.load(str(prepared), load_external_data=False).graph.node}
    lost = [n for n in exclude_nodes if n not in names]
    if lost:
        raise ExportError(f"{src.name}: nodes to keep fp32 disappeared in pre-processing: {lost[:5]}")
    quantize_static(
        str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(INT8_OPS), nodes_to_exclude=list(exclude_nodes),
        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    prepared.unlink(missing_ok=True)


def calibration_batches(windows: Sequence[Sequence[np.ndarray]],
                        batch: int = CALIBRATION_BATCH) -> dict[str, list[np.ndarray]]:
    """Graph name -> input batches: waveforms for the audio graph, the frames for the frame graph."""
    waves = [np.stack([np.asarray(w[0], np.float32) for w in windows[i:i + batch]])
             for i in range(0, len(windows), batch)]
    frames = [np.concatenate([np.asarray(w[1], np.uint8) for w in windows[i:i + batch]])
              for i in range(0, len(windows), batch)]
    return {schema.AUDIO_GRAPH: waves, schema.FRAME_GRAPH: frames}


def _spread(n_items: int, n_wanted: int) -> list[int]:
    """n_wanted indices spread evenly over n_items (lists are sorted by class: never take a head)."""
    if n_wanted >= n_items:
        return list(range(n_items))
    return sorted({int(round(x)) for x in np.linspace(0, n_items - 1, n_wanted)})


def load_split_windows(data_dir: Path, split: str, cfg: ModelConfig, max_windows: int,
                       cache_dir: Path) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Up to max_windows aligned 1-s windows (wave, frames, label index) of a TAU split, spread
    over its clips, through the same cache and eval-mode dataset that training validates on."""
    try:
        from training.data.cache import build_cache
        from training.data.datasets import CropDataset
        from training.data.places import read_split
    except ImportError as e:
        raise ExportError(f"reading {data_dir} needs training.data (tau, cache, datasets): {e}") from e
    tau = read_split(data_dir, split, cfg.classes)
    if not tau.rows:
        raise ExportError(f"{tau.csv_path}: no usable clips for {split} windows")
    # Eval mode cuts every clip into 1-s windows. Cache only as many clips as needed (spread
    # over the class-sorted list), assuming 10-s clips first and widening if they are shorter.
    n_clips = min(len(tau.rows), -(-max_windows // SEGMENTS_PER_CLIP))
    while True:
        rows = [tau.rows[i] for i in _spread(len(tau.rows), n_clips)]
        cache = build_cache(rows, cache_dir, cfg.sample_rate, cfg.frame_size, progress=False,
                            classes=cfg.classes)
        dataset = CropDataset(cache, cfg, mode="eval")
        if len(dataset) >= max_windows or n_clips == len(tau.rows) or len(dataset) == 0:
            break
        n_clips = min(len(tau.rows), -(-n_clips * max_windows // len(dataset)))
    if len(dataset) == 0:
        raise ExportError(f"{tau.csv_path}: none of {len(rows)} clips could be read for {split} "
                          f"windows ({cache.report.summary()})")
    out = []
    for i in _spread(len(dataset), max_windows):
        item = dataset[i]
        out.append((np.asarray(item.wave, np.float32), np.asarray(item.frames, np.uint8),
                    int(item.label)))
    log.info("%s split: %d windows from %d clips of %s", split, len(out), len(rows), data_dir)
    return out
