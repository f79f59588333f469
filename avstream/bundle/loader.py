"""Open a bundle and refuse it, before anything runs, unless every file is what the manifest says.

Checks, in order (each failure: one BundleError line naming the file and the problem):
manifest present and parseable, format name and version supported, every listed file present
with the listed sha256, then each graph's real inputs and outputs (names, dtypes, static
dimensions, a dynamic batch axis, the class count of the probability outputs) against the
manifest. Graph IO is read through an ONNX Runtime session with graph optimisations off (no
torch, no onnx package); that also proves the file is a graph this onnxruntime can load.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from avstream.bundle import schema
from avstream.bundle.manifest import (
    Manifest,
    ManifestError,
    TensorSpec,
    check_format,
    parse_manifest,
)
from avstream.errors import BundleError

log = logging.getLogger(__name__)

ORT_DTYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
}
PROBS_OUTPUTS: frozenset[str] = frozenset(
    {schema.AUDIO_PROBS, schema.VISUAL_PROBS, schema.EARLY_PROBS, schema.FINAL_PROBS}
)
HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its directory and its manifest."""

    root: Path
    manifest: Manifest

    def graph_path(self, name: str) -> Path:
        if name not in self.manifest.graphs:
            raise KeyError(f"graph {name!r}; expected one of {list(self.manifest.graphs)}")
        return self.root / self.manifest.graphs[name].file

    @property
    def classes(self) -> tuple[str, ...]:
        return self.manifest.classes

    @property
    def variant(self) -> str:
        return self.manifest.variant


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(root: Path) -> Manifest:
    """manifest.json -> Manifest (format and version checked first); no graph is opened."""
    path = root / schema.MANIFEST_NAME
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle directory (expected a folder holding "
                          f"{schema.MANIFEST_NAME} and its ONNX graphs)")
    if not path.is_file():
        raise BundleError(f"{path}: missing; a bundle folder must hold {schema.MANIFEST_NAME}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: cannot be read ({e})") from e
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: not valid JSON ({e})") from e
    try:
        check_format(data)
        return parse_manifest(data)
    except ManifestError as e:
        raise BundleError(f"{path}: {e}") from e


def verify_files(root: Path, manifest: Manifest) -> None:
    for name, expected in manifest.files.items():
        path = root / name
        if not path.is_file():
            raise BundleError(f"{path}: missing (listed in {schema.MANIFEST_NAME})")
        try:
            actual = sha256_file(path)
        except OSError as e:
            raise BundleError(f"{path}: cannot be read ({e})") from e
        if actual != expected:
            raise BundleError(f"{path}: sha256 mismatch (file has {actual[:16]}..., "
                              f"{schema.MANIFEST_NAME} says {expected[:16]}...); the file was "
                              f"changed or damaged after export")


def _fmt_shape(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _open_graph(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: this session just reads the graph's signature
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own pybind error types for unloadable graphs
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise BundleError(f"{path}: not a loadable ONNX graph ({first})") from e


def _check_tensors(path: Path, kind: str, expected: tuple[TensorSpec, ...],
                   actual: Sequence[Any], n_classes: int) -> None:
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


def verify_graphs(root: Path, manifest: Manifest) -> None:
    for name in schema.GRAPHS:
        spec = manifest.graphs[name]
        path = root / spec.file
        session = _open_graph(path)
        _check_tensors(path, "input", spec.inputs, session.get_inputs(), manifest.n_classes)
        _check_tensors(path, "output", spec.outputs, session.get_outputs(), manifest.n_classes)
        del session


def load_bundle(path: Path | str) -> Bundle:
    """Verify everything a bundle claims, then hand it out; refuse it with one line if not."""
    root = Path(path)
    manifest = read_manifest(root)
    verify_files(root, manifest)
    verify_graphs(root, manifest)
    log.info("bundle %s verified: variant %s, %d classes", root, manifest.variant,
             manifest.n_classes)
    return Bundle(root=root, manifest=manifest)
