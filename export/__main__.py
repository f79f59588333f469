"""``python -m export CHECKPOINT OUT_DIR [--fp16 | --int8 | --precisions fp32,int8,fp16]
[--calibrate DATA_DIR]``: thin CLI.

A user's mistake (missing or unreadable checkpoint, bad folder, bad option) prints one line and
exits 2; an export that fails its own checks prints one line and exits 1.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from avstream.errors import EXIT_FAILURE, AvstreamError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Export an avstream training checkpoint as a model bundle.")


@app.command()
def main(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file written by training.")],
    out_dir: Annotated[Path, typer.Argument(help="Bundle folder to create.")],
    fp16: Annotated[bool, typer.Option("--fp16", help="fp16 graphs for CUDA (front end and "
                                       "head kept fp32).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Static int8 (QDQ) graphs for CPU; "
                                       "needs --calibrate.")] = False,
    precisions: Annotated[str | None, typer.Option(
        "--precisions", metavar="LIST",
        help="Several precisions in one bundle, the first the main one, e.g. fp32,int8,fp16 "
             "(int8 needs --calibrate); `avstream ... --precision` picks at run time.")] = None,
    calibrate: Annotated[Path | None, typer.Option(
        "--calibrate", metavar="DATA_DIR",
        help="TAU-layout data: int8 calibrates on its train split; int8/fp16 are measured on its "
             "evaluate split.")] = None,
    calibration_windows: Annotated[int, typer.Option(help="Train windows for calibration.")] = 64,
    evaluation_windows: Annotated[int, typer.Option(help="Evaluate windows measured.")] = 200,
    cache_dir: Annotated[Path | None, typer.Option(
        help="Clip cache folder (default DATA_DIR/.avstream-cache).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17).")] = 18,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each step.")] = False,
) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if verbose:  # our steps only: the exporter's own INFO logs are hundreds of lines
        for name in ("export", "avstream"):
            logging.getLogger(name).setLevel(logging.INFO)
    try:
        if fp16 + int8 + (precisions is not None) > 1:
            raise _usage("--fp16, --int8 and --precisions exclude each other; choose one")
        chosen = ["fp16" if fp16 else "int8" if int8 else "fp32"]
        if precisions is not None:
            chosen = [p.strip() for p in precisions.split(",") if p.strip()]
            if not chosen:
                raise _usage(f"--precisions {precisions!r}; expected e.g. fp32,int8,fp16")
        from export.bundle_writer import ExportOptions, export_bundle
        from export.onnx_export import ExportError

        options = ExportOptions(
            variant=chosen[0], extra=tuple(chosen[1:]), opset=opset,
            data_dir=calibrate, calibration_windows=calibration_windows,
            evaluation_windows=evaluation_windows, cache_dir=cache_dir, force=force,
        )
        try:
            result = export_bundle(checkpoint, out_dir, options)
        except ExportError as e:
            print(f"export: failed: {e}", file=sys.stderr)
            raise SystemExit(EXIT_FAILURE) from None
    except AvstreamError as e:
        print(f"export: error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    m = result.manifest
    print(f"bundle {result.bundle_dir} ({m.variant}, {m.n_classes} classes, opset "
          f"{m.export.opset}) written in {result.seconds:.1f} s")
    for name, g in m.graphs.items():
        size = result.file_bytes[g.file] / 1e6
        print(f"  {g.file}: {g.precision}, {m.export.exporters[name]} exporter, {size:.2f} MB")
    print(f"  {result.parity.summary()}")
    for precision, v in m.variants.items():
        q = v.quantization
        files = ", ".join(g.file for g in v.graphs.values())
        print(f"  {precision} ({files}): agreement with torch {q.label_agreement:.4f} on "
              f"{q.evaluation_windows} {q.evaluation_split} windows, max|diff| {q.max_abs_diff:.2e}")
    if m.quantization is not None and m.quantization.accuracy_change is not None:
        q = m.quantization
        print(f"  accuracy on {q.evaluation_windows} {q.evaluation_split} windows: fp32 "
              f"{q.accuracy_fp32:.4f}, {m.variant} {q.accuracy_variant:.4f} "
              f"(change {q.accuracy_change:+.4f})")


def _usage(message: str) -> AvstreamError:
    return AvstreamError(message)


if __name__ == "__main__":
    app()
