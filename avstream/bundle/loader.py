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
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from avstream.bundle import schema
from avstream.bundle.format import StreamFormat, check_signature, stream_format
from avstream.bundle.manifest import Manifest, ManifestError
from avstream.bundle.parse import check_format, parse_manifest
from avstream.errors import BundleError

log = logging.getLogger(__name__)

HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its directory and its manifest."""

    root: Path
    manifest: Manifest
    format: StreamFormat
    """The stream format, built once from the manifest (every consistency check passed)."""

    def graph_path(self, name: str) -> Path:
        if name not in self.manifest.graphs:
            raise KeyError(f"graph {name!r}; expected one of {list(self.manifest.graphs)}")
        return self.root / self.manifest.graphs[name].file

    def precisions(self) -> dict[str, dict[str, Path]]:
        """Precision -> graph name -> file, for every precision the bundle ships."""
        out = {self.manifest.variant: {name: self.graph_path(name) for name in schema.GRAPHS}}
        for precision, variant in self.manifest.variants.items():
            out[precision] = {name: self.root / g.file for name, g in variant.graphs.items()}
        return out

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


def read_manifest(root: Path) -> tuple[Manifest, StreamFormat]:
    """manifest.json -> Manifest and its StreamFormat (format and version checked first, then
    every field, then their agreement); no graph is opened."""
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
        manifest = parse_manifest(data)
        return manifest, stream_format(manifest)
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


def _open_graph(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: this session just reads the graph's signature
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own pybind errors for unloadable graphs
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise BundleError(f"{path}: not a loadable ONNX graph ({first})") from e


def verify_graphs(root: Path, manifest: Manifest) -> None:
    specs = [(name, manifest.graphs[name]) for name in schema.GRAPHS] + [
        (name, g) for v in manifest.variants.values() for name, g in v.graphs.items()]
    for _name, spec in specs:
        path = root / spec.file
        session = _open_graph(path)
        check_signature(path, "input", spec.inputs, session.get_inputs(), manifest.n_classes)
        check_signature(path, "output", spec.outputs, session.get_outputs(), manifest.n_classes)
        del session


def load_bundle(path: Path | str) -> Bundle:
    """Verify everything a bundle claims, then hand it out; refuse it with one line if not."""
    root = Path(path)
    manifest, fmt = read_manifest(root)
    verify_files(root, manifest)
    verify_graphs(root, manifest)
    log.info("bundle %s verified: variant %s, %d classes", root, manifest.variant,
             manifest.n_classes)
    return Bundle(root=root, manifest=manifest, format=fmt)
