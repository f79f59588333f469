"""HTTP output of one run (``--http``): a status page, ``/status``, ``/metrics``, ``/events``
(Server-Sent Events) and ``/history``.

``--http [HOST:]PORT`` listens on 127.0.0.1 unless a host is given; any other address needs a
bearer token (``--http-token``), which every request must then carry, either as the header
``Authorization: Bearer TOKEN`` or as the query ``?access_token=TOKEN`` (the page passes its own
query on to ``/status`` and ``/events``, since a browser's EventSource cannot set headers).

The pieces: ``http_config.py`` (address and token rule), ``http_server.py`` (listening, replies),
``http_stream.py`` (a stream's endpoints); ``site.py`` serves every stream of ``avstream serve``
on one port with the same pieces.
"""

from __future__ import annotations

from http import HTTPStatus

from avstream.outputs.http_config import LOOPBACK, HttpConfig, parse_http_address
from avstream.outputs.http_server import (
    PAGE_TYPE,
    Reply,
    Served,
    Streamed,
    not_found,
    static_page,
    unauthorized,
)
from avstream.outputs.http_stream import KEYS, NAME, StreamEndpoints, metrics_registry
from avstream.outputs.stats import OutputStats
from avstream.results.records import HopRecord, RunInfo
from avstream.results.summary import RunSummary

__all__ = ["KEYS", "LOOPBACK", "NAME", "HttpConfig", "HttpSink", "parse_http_address"]

PAGE = "index.html"
PAGE_PATHS = ("/", "/index.html")


class HttpSink(Served):
    """Serves one stream; the server listens from construction until ``end()`` (or
    ``close()``, for a run that never started)."""

    name = NAME
    ROUTES = "page, /status, /metrics, /events"

    def __init__(self, config: HttpConfig, stats: OutputStats) -> None:
        self.registry = metrics_registry()
        self.config = config
        self.stats = stats
        self.endpoints = StreamEndpoints(config, stats, self.registry)
        self.status = self.endpoints.status
        self.events = self.endpoints.events
        self.page = static_page(PAGE)
        self.listen()

    # ------------------------------------------------------------------ sink protocol

    def start(self, info: RunInfo) -> None:
        self.endpoints.start(info)

    def hop(self, record: HopRecord) -> None:
        self.endpoints.hop(record)

    def source_changed(self, source: str, up: bool, t: float) -> None:
        self.endpoints.source_changed(source, up, t)

    def end(self, summary: RunSummary) -> None:
        self.endpoints.end(summary)
        self.close()

    # ------------------------------------------------------------------ requests

    def answer(self, path: str, query: str, authorized: bool) -> Reply | Streamed:
        page = path in PAGE_PATHS
        if not self.endpoints.count(authorized):
            return unauthorized(self.page if page else None)
        if page:
            return Reply(HTTPStatus.OK, PAGE_TYPE, self.page)
        if path == "/metrics":
            return self.registry.reply()
        answer = self.endpoints.answer(path.lstrip("/"), query)
        if answer is not None:
            return answer
        return not_found(path, "/, /status, /metrics, /events or /history")
