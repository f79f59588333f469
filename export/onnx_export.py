"""torch -> ONNX for the three streaming graphs, each checked to keep a dynamic batch axis.

The dynamo exporter is tried first with an example batch of 2 (a batch-1 example freezes the
batch axis at 1). If it fails on a graph, the legacy TorchScript exporter is used for that graph
and the fact is recorded (ExportedGraph.exporter), never swapped in quietly. Every exported graph
is then read back: its inputs and outputs must have a symbolic first dimension, and ONNX Runtime
must reproduce torch on batch 1 and batch 3.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch.export import Dim

from avstream.bundle import schema
from export.graphs import build_graph, example_inputs
from training.config import ModelConfig
from training.model import AVSceneNet

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
"""Opset 18 runs on every onnxruntime >= 1.14 and has everything these graphs use."""
EXAMPLE_BATCH = 2
CHECK_BATCHES: tuple[int, ...] = (1, 3)
CHECK_RTOL: dict[str, float] = {"fp32": 1e-3, "fp16": 5e-2}
"""ORT vs fp32 torch per graph on random inputs, relative to the output's largest magnitude: a
loose sanity bound on raw features; the strict probability parity lives in export/parity.py."""
MAX_BATCH = 4096
EXPORTERS: tuple[str, ...] = ("dynamo", "legacy")


class ExportError(RuntimeError):
    """A graph could not be exported, or the exported graph does not behave like torch."""


@dataclass(frozen=True)
class ExportedGraph:
    name: str
    path: Path
    exporter: str
    """"dynamo" or "legacy": the torch.onnx exporter that produced this file."""
    opset: int
    precision: str
    max_abs_diff: float
    """Largest |ORT - torch| over all outputs of the batch-1 and batch-3 checks."""
    seconds: float


def cpu_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """An explicit CPU session (threads 0 = ORT's default, one per core; no spinning)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _export_dynamo(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                   inputs: Sequence[str], outputs: Sequence[str], opset: int) -> None:
    batch = Dim(schema.BATCH_AXIS, min=1, max=MAX_BATCH)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        # Every input's axis is named "batch" on purpose: the exporter says it merges them.
        warnings.filterwarnings("ignore", message=r".*axis name: batch will not be used")
        warnings.filterwarnings("ignore", message=r".*were assigned during export")  # nn.GRU
        program = torch.onnx.export(
            module, args, None, dynamo=True, verbose=False, opset_version=opset,
            input_names=list(inputs), output_names=list(outputs),
            dynamic_shapes=tuple({0: batch} for _ in inputs), external_data=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export(dynamo=True) returned no program")
    program.save(str(path), external_data=False)


def _export_legacy(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                   inputs: Sequence[str], outputs: Sequence[str], opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # GRU batch warning: batch checked below
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape asserts in nn.GRU
        torch.onnx.export(
            module, args, str(path), dynamo=False, opset_version=opset,
            input_names=list(inputs), output_names=list(outputs),
            dynamic_axes={n: {0: schema.BATCH_AXIS} for n in (*inputs, *outputs)},
            do_constant_folding=True,
        )


def check_batch_axis(path: Path) -> None:
    """Every input and output must keep a symbolic first dimension (the dynamic batch)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    for kind, values in (("input", graph.input), ("output", graph.output)):
        for v in values:
            dims = v.type.tensor_type.shape.dim
            if not dims or not dims[0].dim_param:
                first = dims[0].dim_value if dims else "none"
                raise ExportError(f"{path.name}: {kind} '{v.name}' has batch dimension {first}; "
                                  f"expected a dynamic axis")


def check_against_torch(path: Path, module: torch.nn.Module, name: str, cfg: ModelConfig,
                        rtol: float = CHECK_RTOL["fp32"],
                        batches: Sequence[int] = CHECK_BATCHES) -> float:
    """Run ORT on batch 1 and 3 and compare with torch; returns the largest abs difference."""
    session = cpu_session(path)
    in_names, out_names = schema.GRAPH_IO[name]
    gen = torch.Generator().manual_seed(1234)
    worst = 0.0
    for b in batches:
        args = example_inputs(name, cfg, b, gen)
        with torch.no_grad():
            ref = module(*args)
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = session.run(list(out_names), {n: a.numpy() for n, a in zip(in_names, args, strict=True)})
        for out_name, r, g in zip(out_names, ref, got, strict=True):
            r = r.numpy()
            if g.shape != r.shape:
                raise ExportError(f"{path.name}: output '{out_name}' at batch {b} has shape "
                                  f"{g.shape}; torch gives {r.shape}")
            diff = float(np.max(np.abs(g.astype(np.float64) - r)))
            scale = max(1.0, float(np.max(np.abs(r))))
            if not np.isfinite(diff) or diff > rtol * scale:
                raise ExportError(f"{path.name}: output '{out_name}' at batch {b} differs from "
                                  f"torch by {diff:.3g} (allowed {rtol * scale:.3g})")
            worst = max(worst, diff)
    return worst


def export_graph(name: str, model: AVSceneNet, path: Path, opset: int = DEFAULT_OPSET,
                 exporters: Sequence[str] = EXPORTERS, precision: str = "fp32") -> ExportedGraph:
    """Export one graph with the first exporter that works, then check it against fp32 torch.

    precision "fp16" exports graphs.half_precision_model (front end and pixel normaliser fp32).
    """
    cfg = model.cfg
    module = build_graph(name, model, precision)
    reference = module if precision == "fp32" else build_graph(name, model)
    inputs, outputs = schema.GRAPH_IO[name]
    args = example_inputs(name, cfg, EXAMPLE_BATCH, torch.Generator().manual_seed(0))
    failures: list[str] = []
    for exporter in exporters:
        if exporter not in EXPORTERS:
            raise ValueError(f"exporter {exporter!r}; expected one of {list(EXPORTERS)}")
        t0 = time.perf_counter()
        try:
            fn = _export_dynamo if exporter == "dynamo" else _export_legacy
            fn(module, args, path, inputs, outputs, opset)
        except Exception as e:  # exporters raise anything from deep inside torch
            failures.append(f"{exporter}: {e.__class__.__name__}: {str(e).splitlines()[0][:300]}")
            log.warning("graph %s: %s exporter failed (%s)", name, exporter, failures[-1])
            continue
        check_batch_axis(path)
        diff = check_against_torch(path, reference, name, cfg, CHECK_RTOL[precision])
        seconds = time.perf_counter() - t0
        if failures:
            log.warning("graph %s exported with the %s exporter after: %s", name, exporter,
                        "; ".join(failures))
        log.info("graph %s (%s): %s exporter, opset %d, %.1f s, ORT vs torch max diff %.2e",
                 name, precision, exporter, opset, seconds, diff)
        return ExportedGraph(name=name, path=path, exporter=exporter, opset=opset,
                             precision=precision, max_abs_diff=diff, seconds=seconds)
    raise ExportError(f"graph {name}: no exporter succeeded ({'; '.join(failures)})")


def export_graphs(model: AVSceneNet, out_dir: Path, opset: int = DEFAULT_OPSET,
                  exporters: Sequence[str] = EXPORTERS) -> dict[str, ExportedGraph]:
    """All three graphs as ``<name>.onnx`` in out_dir (fp32, with the exporter's node metadata)."""
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    return {name: export_graph(name, model, out_dir / f"{name}.onnx", opset, exporters)
            for name in schema.GRAPHS}
