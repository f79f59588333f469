"""``avstream batch``: label an archive, one JSON lines file per input plus ``summary.csv``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from avstream.batch import (
    BatchJob,
    FileResult,
    expand_inputs,
    plan_batch,
    run_local,
    threads_per_worker,
    write_summary,
)
from avstream.bundle.loader import load_bundle
from avstream.commands import options as opt
from avstream.driver import pipeline_config
from avstream.errors import EXIT_USAGE


def batch(
    inputs: Annotated[list[Path], typer.Argument(
        help="Media files, or folders (every media file under them).")],
    model: opt.Model,
    out: Annotated[Path, typer.Option("--out", help="Folder for <file>.jsonl and summary.csv.")],
    workers: Annotated[int, typer.Option(
        "--workers", help="Local worker processes (each opens the bundle once).")] = 1,
    ray: opt.Ray = None,
    hop: opt.Hop = opt.DEFAULT_HOP_S,
    provider: opt.Provider = None,
    precision: opt.Precision = opt.DEFAULT_PRECISION,
    threads: Annotated[int, typer.Option(
        "--threads", help="Intra-op threads per graph in each worker (0: the CPUs shared "
                          "among the workers).")] = 0,
    smoothing: opt.Smoothing = opt.SMOOTHING_DEFAULTS.method,
    smooth_windows: opt.SmoothWindows = opt.SMOOTHING_DEFAULTS.windows,
    margin: opt.Margin = opt.SMOOTHING_DEFAULTS.margin,
    hold: opt.Hold = opt.SMOOTHING_DEFAULTS.hold_hops,
    floor: opt.Floor = opt.SMOOTHING_DEFAULTS.floor,
) -> None:
    """Label every file as `replay --fast` would; a rerun skips the files already done.

    Exit 0 when every file was labelled, 2 when some could not be (see the error column)."""
    if ray:
        from avstream.cluster import check_ray_option

        check_ray_option(ray)
    config = pipeline_config(hop, smoothing, smooth_windows, margin, hold, floor)
    classes = load_bundle(model).classes
    files = expand_inputs(inputs)
    plan = plan_batch(files, out)
    job = BatchJob(model=str(model), pipeline=config, provider=provider,
                   precision=precision, threads=threads_per_worker(threads, 1 if ray else workers))
    where = f"Ray ({ray})" if ray else f"{workers} worker process(es)"
    print(f"avstream: batch of {len(files)} file(s): {len(plan.finished)} already done, "
          f"{len(plan.todo)} to label on {where}", file=sys.stderr)
    failed: list[FileResult] = []
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("labelling", total=len(plan.todo))

        def on_result(r: FileResult) -> None:
            if not r.done:
                failed.append(r)
                progress.console.print(f"avstream: {r.file}: {r.error}", markup=False,
                                       highlight=False, soft_wrap=True)
            progress.advance(task)

        try:
            if ray:
                from avstream.cluster import run_ray_batch

                run_ray_batch(job, plan, on_result, ray)
            else:
                run_local(job, plan, workers, on_result)
        finally:
            summary = write_summary(plan, classes)
    print(f"avstream: {len(files) - len(failed)} of {len(files)} file(s) labelled; "
          f"{summary}", file=sys.stderr)
    if failed:
        raise typer.Exit(EXIT_USAGE)
