"""``avstream serve CONFIG``: many named streams on one set of sessions, batched across streams.

Runs until every stream has ended (file streams end with their file; device streams run until
stopped) or SIGINT / SIGTERM, then prints one line per stream. Exit 0 when no stream ended in an
error; 2 when a file stream did (a bad file), 3 when only device streams did; 2 for a bad config
entry (one line naming it) before anything starts.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated

import cv2
import typer

from avstream.commands import options as opt
from avstream.driver import stop_on_signals
from avstream.errors import EXIT_DEVICE, EXIT_USAGE, AvstreamError
from avstream.serve.config import load_serve_config


def serve(
    config: Annotated[Path, typer.Argument(help="TOML file naming the streams (see README).")],
    ray: opt.Ray = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Only check CONFIG (every mistake at once, by key path) and its bundle's "
                        "checksums; exit 0 when valid, 2 otherwise. Starts nothing.")] = False,
) -> None:
    """Serve every stream of CONFIG; frame encodes and windows that come due together run as
    one batch."""
    cfg = load_serve_config(config)
    if check:
        from avstream.bundle.loader import load_bundle

        bundle = load_bundle(cfg.model)
        print(f"avstream: {config} is valid: {len(cfg.streams)} stream(s) "
              f"({', '.join(s.name for s in cfg.streams)}); model {cfg.model} "
              f"({len(bundle.manifest.classes)} classes, checksums verified)")
        return
    # OpenCV's own warnings (stream timeouts while a camera reconnects) repeat what each
    # stream reports in one line; errors still show.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    if ray:
        from avstream.cluster import check_ray_option

        check_ray_option(ray)
        if cfg.http is not None:
            raise AvstreamError(f"{config}: outputs.http (one server for every stream) runs "
                                f"without --ray; expected no outputs.http with --ray (each "
                                f"stream's own [streams.NAME.outputs] http works there)")
    where = f"Ray ({ray})" if ray else "this process"
    print(f"avstream: serve {len(cfg.streams)} stream(s) "
          f"({', '.join(s.name for s in cfg.streams)}) on {where}, batches of up to "
          f"{cfg.batching.max_batch} within {cfg.batching.max_wait_ms:g} ms", file=sys.stderr)
    # Signals set the event: every stream finishes its window and ends.
    with stop_on_signals(threading.Event(), interrupt=False) as stop:
        if ray:
            from avstream.serve.ray_backend import serve_ray

            report = serve_ray(cfg, ray, stop)
        else:
            from avstream.serve.local import serve_local

            report = serve_local(cfg, stop, announce=lambda line: print(
                f"avstream: {line}", file=sys.stderr))
    for o in report.outcomes:
        print(f"avstream: {o.line()}", file=sys.stderr)
    for line in report.batch_lines():
        print(f"avstream: {line}", file=sys.stderr)
    files = {s.name for s in cfg.streams if s.file is not None}
    failed = [o for o in report.outcomes if o.error is not None]
    if any(o.name in files for o in failed):
        raise typer.Exit(EXIT_USAGE)
    if failed:
        raise typer.Exit(EXIT_DEVICE)
