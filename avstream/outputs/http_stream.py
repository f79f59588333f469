"""One stream's HTTP endpoints: ``status``, ``events`` (Server-Sent Events) and ``history``, and
its share of the metrics; a sink, fed by the pipeline thread.

``hop()`` only updates the status under a short lock, observes the latency histograms and hands
the record to the SSE fan-out without waiting (``sse.py``). The same endpoints serve under
``--http`` (``http.py``, at ``/``) and under serve's site server (``site.py``, at
``/streams/NAME/``).
"""

from __future__ import annotations

import logging
import queue
import socket
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from avstream.errors import AvstreamError
from avstream.outputs.history_query import http_answer
from avstream.outputs.http_config import HttpConfig
from avstream.outputs.http_server import Handler, Reply, Streamed, json_reply
from avstream.outputs.sse import CLOSE, Broadcaster, Event
from avstream.outputs.stats import OutputStats, compact_json
from avstream.outputs.status import StreamStatus
from avstream.results.records import HopRecord, RunInfo
from avstream.results.summary import RunSummary

if TYPE_CHECKING:
    from avstream.outputs.metrics import MetricsRegistry

log = logging.getLogger(__name__)

NAME = "http"
KEYS = ("requests", "unauthorized", "clients", "events_sent", "dropped", "clients_dropped")
ENDPOINTS = ("status", "events", "history")
END_DRAIN_S = 1.0
"""At the end of a run, time given to /events clients to receive the ``end`` event."""
DRAIN_POLL_S = 0.01
SSE_RETRY_MS = 2000
"""How long a browser waits before reconnecting a broken /events stream."""


def metrics_registry() -> MetricsRegistry:
    """A new process-wide registry; AvstreamError when prometheus_client is missing."""
    try:
        from avstream.outputs.metrics import MetricsRegistry
    except ImportError as e:
        raise AvstreamError("--http needs the Python package prometheus_client; expected it "
                            "installed: pip install 'avstream[http]'") from e
    return MetricsRegistry()


class StreamEndpoints:
    """A stream's status, events and history for HTTP; a sink (``end()`` does not close any
    server: the server may serve other streams)."""

    name = NAME

    def __init__(self, config: HttpConfig, stats: OutputStats, metrics: MetricsRegistry) -> None:
        self.config = config
        self.stats = stats
        stats.register(NAME, KEYS)
        self.status = StreamStatus(config.name, stats)
        self.metrics = metrics.add(self.status)
        self.events = Broadcaster(NAME, stats, config.client_queue, config.max_clients)

    # ------------------------------------------------------------------ sink protocol

    def start(self, info: RunInfo) -> None:
        self.status.start(info)

    def hop(self, record: HopRecord) -> None:
        j = record.to_json()
        self.status.update(j)
        self.metrics.observe(record.latency_ms)
        if self.events.client_count:
            self.events.publish(Event("hop", compact_json(j)))

    def source_changed(self, source: str, up: bool, t: float) -> None:
        """The camera or microphone was lost or is back (``SourceWatcher``): /status, /metrics."""
        self.status.source_changed(source, up)

    def end(self, summary: RunSummary) -> None:
        """The run ended: /events clients get the ``end`` event (given a moment to read it)."""
        self.status.end(summary)
        summary.outputs[NAME] = self.stats.of(NAME)
        self.events.publish(Event("end", compact_json(
            {"stopped": summary.stopped, "windows": summary.windows, "outputs": summary.outputs})))
        self.events.close()
        deadline = time.monotonic() + END_DRAIN_S
        while self.events.client_count and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_S)

    # ------------------------------------------------------------------ requests

    def count(self, authorized: bool) -> bool:
        """Count a request to this stream (and a refused one); whether it may go on."""
        self.stats.add(NAME, "requests")
        if not authorized:
            self.stats.add(NAME, "unauthorized")
        return authorized

    def answer(self, endpoint: str, query: str) -> Reply | Streamed | None:
        """``status``, ``events`` or ``history``; None for anything else."""
        if endpoint == "status":
            return json_reply(HTTPStatus.OK, self.status.snapshot())
        if endpoint == "events":
            return self
        if endpoint == "history":
            return Reply(*http_answer(self.config.history, self.config.name, query))
        return None

    def serve_events(self, handler: Handler) -> None:
        client = self.events.subscribe()
        if client is None:
            handler.send(json_reply(HTTPStatus.SERVICE_UNAVAILABLE, {
                "error": f"{self.config.max_clients} /events clients already"}))
            return
        cfg = self.config
        try:
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                          cfg.send_buffer_bytes)
            handler.send_response(HTTPStatus.OK)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Cache-Control", "no-store")
            handler.end_headers()
            handler.wfile.write(f"retry: {SSE_RETRY_MS}\n\n".encode())
            latest = self.status.latest()
            if latest is not None:
                handler.wfile.write(Event("hop", compact_json(latest)).encode())
            while True:
                try:
                    event = client.queue.get(timeout=cfg.keepalive_s)
                except queue.Empty:
                    handler.wfile.write(b": keepalive\n\n")
                    continue
                if event.kind == CLOSE:
                    return
                handler.wfile.write(event.encode())
                self.stats.add(NAME, "events_sent")
        except TimeoutError:
            self.stats.add(NAME, "clients_dropped")
            log.warning("http: an /events client (%s) read nothing for %g s; disconnected it "
                        "(%d events dropped for it)", handler.address_string(),
                        cfg.write_timeout_s, client.dropped)
        except OSError:
            pass  # the browser went away
        finally:
            self.events.unsubscribe(client)

