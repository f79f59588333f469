"""``avstream serve`` in one process: one engine, one batcher thread, a thread per stream."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from avstream.driver import open_engine
from avstream.inference.api import EngineLike
from avstream.serve.batcher import Batcher, BatchStats, encode_workers, lane_threads
from avstream.serve.config import ServeConfig
from avstream.serve.streams import StreamOutcome, StreamRunner

if TYPE_CHECKING:
    from avstream.outputs.site import SiteServer

log = logging.getLogger(__name__)

WATCH_S = 0.2
"""How often the streams are looked at for their end or a stop request."""
STOP_GRACE_S = 10.0
"""After a stop request, how long a stream may take to finish its window and close."""


@dataclass(frozen=True)
class ServeReport:
    outcomes: tuple[StreamOutcome, ...]
    batching: BatchStats | None
    """What the batcher did (on Ray: every replica's batches together)."""
    replicas: dict[str, BatchStats] = field(default_factory=dict)
    """On Ray: each replica's batches, by replica id."""

    def batch_lines(self) -> list[str]:
        """The summary's lines on batching: all of it, then each replica's share (on Ray)."""
        b = self.batching
        if b is None or not b.batches:
            return []
        waited = "" if self.replicas else f", longest wait {b.wait_ms_max:.1f} ms"
        lines = [f"{b.requests} requests in {b.batches} batches (mean {b.mean_size():.2f}, "
                 f"largest {b.largest}{waited}, {b.dropped} windows dropped as late)"]
        lines += [f"replica {name}: {s.requests} requests in {s.batches} batches"
                  for name, s in sorted(self.replicas.items())]
        return lines


def run_streams(runners: list[StreamRunner], stop: threading.Event) -> None:
    """Start every stream; return when all have ended, or after ``stop`` once they stopped."""
    for r in runners:
        r.start()
    while not all(r.join(0) for r in runners):
        if stop.wait(WATCH_S):
            for r in runners:
                r.stop()
            for r in runners:
                if not r.join(STOP_GRACE_S):
                    log.warning("stream %s did not stop within %.0f s", r.config.name,
                                STOP_GRACE_S)
            return


def serve_local(config: ServeConfig, stop: threading.Event,
                announce: Callable[[str], None] = log.info) -> ServeReport:
    """Run every stream of ``config`` on one engine until they end or ``stop`` is set;
    ``announce`` gets the start-up line of the site's server (``[outputs] http``)."""
    site = open_site(config, announce)  # a busy port fails before the model loads
    try:
        engine = open_engine(config.model, config.provider, lane_threads(config.threads),
                             config.precision)
        return serve_engine(config, engine, stop, site)
    finally:
        if site is not None:
            site.close()


def open_site(config: ServeConfig, announce: Callable[[str], None] = log.info
              ) -> SiteServer | None:
    """The one server for every stream, listening, when the config asks for it."""
    if config.http is None:
        return None
    from avstream.outputs.site import SiteServer

    site = SiteServer(config.http)
    announce(site.description)
    return site


def serve_engine(config: ServeConfig, engine: EngineLike, stop: threading.Event,
                 site: SiteServer | None = None) -> ServeReport:
    """``serve_local`` on an engine already open (``config.model`` is not read); the streams
    join ``site``'s pages when given."""
    batcher = Batcher(engine, config.batching, encode_workers(config.threads))
    runners = [StreamRunner(s, batcher.client, site) for s in config.streams]
    try:
        run_streams(runners, stop)
    finally:
        batcher.close()
    return ServeReport(tuple(r.outcome for r in runners), batcher.stats)
