"""One HTTP server for every stream of an ``avstream serve`` process (``[outputs] http``).

``/`` lists every stream (label, confidence, sources up, when the label last changed, a link to
its page), ``/streams`` is that list as JSON, ``/streams/NAME/`` is the stream's own page (the
``--http`` page: its relative ``status``, ``events`` and ``history`` resolve under it), and
``/metrics`` is one exposition with every stream under its ``stream`` label, plus ``process_*``.
The token rule is ``--http``'s (``http_config.py``). Requests to ``/streams/NAME/...`` count in
that stream's ``avstream_http_*`` metrics; ``/``, ``/streams`` and ``/metrics`` belong to no
stream and are not counted.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from http import HTTPStatus
from typing import Any

from avstream.errors import AvstreamError
from avstream.outputs.http import PAGE as STREAM_PAGE
from avstream.outputs.http_config import HttpConfig
from avstream.outputs.http_server import (
    PAGE_TYPE,
    Reply,
    Served,
    Streamed,
    json_reply,
    not_found,
    redirect,
    static_page,
    unauthorized,
)
from avstream.outputs.http_stream import ENDPOINTS, StreamEndpoints, metrics_registry
from avstream.outputs.stats import OutputStats

log = logging.getLogger(__name__)

SITE_PAGE = "site.html"
SITE_PATHS = ("/", "/index.html")
STREAMS = "/streams"
EXPECTED = "/, /metrics, /streams, /streams/NAME/ or /streams/NAME/(status|events|history)"


class SiteServer(Served):
    """Listens from construction until ``close()``; streams join with ``add_stream``."""

    ROUTES = "every stream on /, each on /streams/NAME/, one /metrics"
    TOKEN_OPTION = "outputs.http_token"

    def __init__(self, config: HttpConfig) -> None:
        self.registry = metrics_registry()
        self.config = config
        self._streams: dict[str, StreamEndpoints] = {}
        self._lock = threading.Lock()
        self.page = static_page(SITE_PAGE)
        self.stream_page = static_page(STREAM_PAGE)
        self.listen()

    def add_stream(self, name: str, stats: OutputStats, history: str | None) -> StreamEndpoints:
        """The stream's endpoints (a sink for its outputs), served from now on."""
        with self._lock:
            if name in self._streams:
                raise AvstreamError(f"stream {name!r} is on the site page already; expected "
                                    f"each stream name once")
            endpoints = StreamEndpoints(
                dataclasses.replace(self.config, name=name, history=history), stats, self.registry)
            self._streams[name] = endpoints
        return endpoints

    def overview(self) -> dict[str, Any]:
        """The body of ``GET /streams``: a few fields of each stream's ``/status``."""
        with self._lock:
            streams = [self._streams[name] for name in sorted(self._streams)]
        rows = []
        for e in streams:
            s = e.status.snapshot()
            rows.append({k: s[k] for k in ("stream", "running", "stopped", "label", "confidence",
                                           "sources", "label_since", "wall_time")}
                        | {"page": f"streams/{s['stream']}/"})
        return {"streams": rows}

    def answer(self, path: str, query: str, authorized: bool) -> Reply | Streamed:
        if path in SITE_PATHS or path in ("/metrics", STREAMS):
            if not authorized:
                return unauthorized(self.page if path in SITE_PATHS else None)
            if path == "/metrics":
                return self.registry.reply()
            if path == STREAMS:
                return json_reply(HTTPStatus.OK, self.overview())
            return Reply(HTTPStatus.OK, PAGE_TYPE, self.page)
        name, endpoint = _stream_path(path)
        with self._lock:
            stream = self._streams.get(name or "")
        if stream is None:
            return unauthorized(None) if not authorized else not_found(path, EXPECTED)
        if not stream.count(authorized):
            return unauthorized(self.stream_page if endpoint in ("", None) else None)
        if endpoint is None:  # /streams/NAME: the page's relative links need the slash
            return redirect(f"{STREAMS}/{name}/" + (f"?{query}" if query else ""))
        if endpoint == "":
            return Reply(HTTPStatus.OK, PAGE_TYPE, self.stream_page)
        answer = stream.answer(endpoint, query) if endpoint in ENDPOINTS else None
        return answer if answer is not None else not_found(path, EXPECTED)


def _stream_path(path: str) -> tuple[str | None, str | None]:
    """``/streams/NAME[/ENDPOINT]`` -> (NAME, ENDPOINT: '' for the page, None without the
    slash); (None, None) for any other path."""
    prefix = STREAMS + "/"
    if not path.startswith(prefix):
        return None, None
    name, slash, endpoint = path[len(prefix):].partition("/")
    if "/" in endpoint:
        return None, None
    return name, endpoint if slash else None
