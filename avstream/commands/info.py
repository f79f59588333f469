"""``avstream info BUNDLE [--json]``: verify a bundle and show what its manifest says.

Verification is the full load_bundle check (files, checksums, graph signatures); a bad bundle
is refused with one line and exit 2 by avstream.cli before anything is printed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from avstream.bundle.loader import Bundle, load_bundle
from avstream.bundle.manifest import Manifest, TensorSpec, plain
from avstream.bundle.schema import FRONTEND_V1
from avstream.inference.precision import AUTO, PRECISIONS, PrecisionChoice, choose_precision

SHA_SHOWN = 16  # hex digits shown per file; --json has them all


def _dims(t: TensorSpec) -> str:
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, Mapping):
        return json.dumps(plain(v), default=str)
    if isinstance(v, list | tuple):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def _kv(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left", title_style="bold",
                  box=None, padding=(0, 2, 0, 0))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for k, v in rows.items():
        table.add_row(Text(k), Text(_fmt(v)))
    return table


def _files(m: Manifest) -> Table:
    table = Table(title="files", title_justify="left", title_style="bold", box=None,
                  padding=(0, 2, 0, 0))
    for col in ("graph", "file", "precision", "exporter", "sha256"):
        table.add_column(col, style="cyan" if col == "graph" else None, overflow="fold")
    for name, g in m.graphs.items():
        table.add_row(name, g.file, g.precision, m.export.exporters.get(name, "?"),
                      m.files[g.file][:SHA_SHOWN] + "...")
    return table


def _signatures(m: Manifest) -> Table:
    table = Table(title="graph inputs and outputs", title_justify="left", title_style="bold",
                  box=None, padding=(0, 2, 0, 0))
    for col in ("graph", "", "tensor", "dtype", "shape"):
        table.add_column(col, style="cyan" if col == "graph" else None, no_wrap=True)
    for name, g in m.graphs.items():
        for kind, tensors in (("in", g.inputs), ("out", g.outputs)):
            for t in tensors:
                table.add_row(name, kind, t.name, t.dtype, Text(_dims(t)))
                name = ""
    return table


def _per_graph(m: Manifest, auto: PrecisionChoice) -> Table:
    """Each graph's precisions with their export timings, and what ``auto`` runs here."""
    t = m.timings
    title = ("precision per graph: median ms per run at export" if t is None else
             f"precision per graph: median ms of {t.runs} runs at export on {t.provider} "
             f"({t.cpu}, {t.threads} threads, batch {t.batch})")
    table = Table(title=title, title_justify="left", title_style="bold", box=None,
                  padding=(0, 2, 0, 0))
    shipped = [p for p in PRECISIONS if p == m.variant or p in m.variants]
    for col in ("graph", *shipped, f"--precision {AUTO} here"):
        table.add_column(col, style="cyan" if col == "graph" else None, no_wrap=True)
    for name in m.graphs:
        ms = {} if t is None else t.median_ms.get(name, {})
        table.add_row(name, *(f"{ms[p]:.3g}" if p in ms else "-" for p in shipped),
                      auto.graphs[name])
    return table


def auto_choice(bundle: Bundle) -> PrecisionChoice:
    """What ``--precision auto`` runs on this machine with the default providers."""
    return choose_precision(bundle, AUTO, None)


def frontend_line(m: Manifest) -> str:
    """The audio graph's scaling rule, and for the old one what it means for mono microphones."""
    if m.frontend == FRONTEND_V1:
        return (f"{m.frontend} (format v{m.format_version}: L and R scaled with L-R; a mono "
                "microphone shifts them; re-export from a checkpoint trained with the current "
                "recipe for a mono-safe one)")
    return f"{m.frontend} (L and R scaled alone; mono-safe)"


def render(bundle: Bundle, console: Console) -> None:
    m: Manifest = bundle.manifest
    console.print(Text.assemble((str(bundle.root), "bold"), f": {m.format} v{m.format_version}, "
                                "variant ", (m.variant, "bold"),
                                "; verified: files, sha256, graph signatures"))
    console.print(_kv("classes (output order)",
                      {"": ", ".join(f"{i}:{c}" for i, c in enumerate(m.classes))}))
    console.print(_kv("audio", {**m.audio.to_dict(), "front end": frontend_line(m)}))
    console.print(_kv("video", m.video.to_dict()))
    console.print(_signatures(m))
    console.print(_files(m))
    console.print(_kv("export", m.export.to_dict()))
    p = m.provenance
    console.print(_kv("provenance", {"checkpoint": p.checkpoint, "sha256": p.checkpoint_sha256,
                                     "step": p.step, "preset": p.config.get("preset", "?"),
                                     "training data": p.training_data, "metrics": p.metrics}))
    if m.quantization is not None:
        console.print(_kv("quantization", m.quantization.to_dict()))
    for precision, v in m.variants.items():
        files = {name: f"{g.file} ({g.precision})" for name, g in v.graphs.items()}
        console.print(_kv(f"precision {precision} (--precision {precision})",
                          {**files, **v.quantization.to_dict()}))
    auto = auto_choice(bundle)
    console.print(_per_graph(m, auto))
    console.print(f"--precision {AUTO} here: {auto.precision} ({auto.reason})")
    console.print(_kv("calibration (temperature scaling inside the graphs)",
                      dict(m.calibration) or {"": "none (uncalibrated checkpoint)"}))


def info(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (manifest.json + ONNX graphs).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Verify a model bundle and print its manifest."""
    loaded = load_bundle(bundle)
    if as_json:
        auto = auto_choice(loaded)
        typer.echo(json.dumps({**loaded.manifest.to_dict(), "verified": True,
                               "auto_here": {"precision": auto.precision,
                                             "graphs": dict(auto.graphs),
                                             "reason": auto.reason}}, indent=2))
        return
    render(loaded, Console())
