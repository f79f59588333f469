"""HTTP output: a status page, ``/status``, ``/metrics`` and ``/events`` (Server-Sent Events).

``--http [HOST:]PORT`` listens on 127.0.0.1 unless a host is given; any other address needs a
bearer token (``--http-token``), which every request must then carry, either as the header
``Authorization: Bearer TOKEN`` or as the query ``?access_token=TOKEN`` (the page passes its own
query on to ``/status`` and ``/events``, since a browser's EventSource cannot set headers).

The server runs on its own threads (stdlib ``ThreadingHTTPServer``, one thread per request).
``hop()`` on the pipeline thread only updates the status under a short lock, observes the
latency histograms and hands the record to the SSE fan-out without waiting (``sse.py``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from avstream.errors import AvstreamError
from avstream.outputs.history_query import http_answer
from avstream.outputs.records import HopRecord, RunInfo
from avstream.outputs.sse import CLOSE, Broadcaster, Event
from avstream.outputs.stats import OutputStats, compact_json
from avstream.outputs.status import StreamStatus
from avstream.outputs.summary import RunSummary

log = logging.getLogger(__name__)

NAME = "http"
KEYS = ("requests", "unauthorized", "clients", "events_sent", "dropped", "clients_dropped")
LOOPBACK = "127.0.0.1"
PAGE = "static/index.html"
PAGE_PATHS, PAGE_TYPE = ("/", "/index.html"), "text/html; charset=utf-8"
JSON_TYPE = "application/json"
SHUTDOWN_POLL_S = 0.1
"""How soon the server notices ``close()``."""
END_DRAIN_S = 1.0
"""At the end of a run, time given to /events clients to receive the ``end`` event."""
SSE_RETRY_MS = 2000
"""How long a browser waits before reconnecting a broken /events stream."""


@dataclass(frozen=True)
class HttpConfig:
    host: str
    port: int
    """0 picks a free port (the start-up line says which)."""
    name: str
    token: str | None = field(default=None, repr=False)
    client_queue: int = 64
    """Events waiting per /events client (about 13 s of hops at 5 Hz) before they are dropped."""
    max_clients: int = 32
    write_timeout_s: float = 5.0
    """A client that accepts no data for this long is disconnected (and counted)."""
    send_buffer_bytes: int = 16 * 1024
    """Kernel send buffer per /events client: what a stalled reader can hold besides its queue."""
    keepalive_s: float = 15.0
    """A comment line is sent after this much silence, so proxies keep the stream open."""
    history: str | None = None  # the --history file /history reads; None: 404 there

    @property
    def loopback(self) -> bool:
        return _is_loopback(self.host)


def parse_http_address(text: str, name: str, token: str | None = None) -> HttpConfig:
    """``[HOST:]PORT`` -> HttpConfig; a non-loopback host without a token is refused."""
    spec = text.strip()
    if spec.startswith("["):  # [::1]:8080
        host, sep, port_text = spec[1:].partition("]:")
        if not sep:
            raise AvstreamError(f"--http {text}: expected [IPV6]:PORT")
    elif ":" in spec:
        host, port_text = spec.rsplit(":", 1)
    else:
        host, port_text = LOOPBACK, spec
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise AvstreamError(f"--http {text}: port {port_text!r}; expected [HOST:]PORT with a port "
                            f"0-65535 (0: any free port)")
    if not host:
        raise AvstreamError(f"--http {text}: empty host; expected PORT (loopback) or HOST:PORT "
                            f"(0.0.0.0:PORT for every interface)")
    if token is not None and not token.strip():
        raise AvstreamError("--http-token is empty; expected a secret string")
    if not _is_loopback(host) and token is None:
        raise AvstreamError(f"--http {text} listens on {host}, which is not a loopback address; "
                            f"expected --http-token TOKEN as well (every request must then send "
                            f"'Authorization: Bearer TOKEN')")
    return HttpConfig(host=host, port=int(port_text), name=name, token=token)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as e:
        raise AvstreamError(f"--http host {host!r} does not resolve ({e}); expected an address "
                            f"or a host name") from e
    return all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: HttpSink

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http: request from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class HttpSink:
    """Serves one stream; the server listens from construction until ``end()``."""

    name = NAME

    def __init__(self, config: HttpConfig, stats: OutputStats) -> None:
        try:
            from avstream.outputs.metrics import CONTENT_TYPE, StreamMetrics
        except ImportError as e:
            raise AvstreamError("--http needs the Python package prometheus_client; expected it "
                                "installed: pip install 'avstream[http]'") from e
        self.config = config
        self.stats = stats
        stats.register(NAME, KEYS)
        self.status = StreamStatus(config.name, stats)
        self.metrics = StreamMetrics(self.status)
        self.metrics_type = CONTENT_TYPE
        self.events = Broadcaster(NAME, stats, config.client_queue, config.max_clients)
        self.page = resources.files("avstream.outputs").joinpath(PAGE).read_bytes()
        server_class = _Server6 if ":" in config.host else _Server
        try:
            self._server = server_class((config.host, config.port), _Handler)
        except OSError as e:
            raise AvstreamError(f"--http {config.host}:{config.port} cannot listen "
                                f"({e.strerror}); expected a free port on a local address") from e
        self._server.sink = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL_S,),
                                        name="avstream-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}/"

    @property
    def description(self) -> str:
        access = ("every request needs the bearer token (--http-token)" if self.config.token
                  else "no token")
        where = "loopback only" if self.config.loopback else "NOT loopback"
        return f"http: {self.url} ({where}; {access}): page, /status, /metrics, /events"

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
        self.status.end(summary)
        summary.outputs[NAME] = self.stats.of(NAME)
        self.events.publish(Event("end", compact_json(
            {"stopped": summary.stopped, "windows": summary.windows, "outputs": summary.outputs})))
        self.events.close()
        deadline = time.monotonic() + END_DRAIN_S
        while self.events.client_count and time.monotonic() < deadline:
            time.sleep(SHUTDOWN_POLL_S / 10)
        self.close()

    def close(self) -> None:
        """Stop listening (``end()`` does this; also for a run that never started)."""
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ requests

    def authorized(self, header: str | None, query: str) -> bool:
        token = self.config.token
        if token is None:
            return True
        if header is not None and header.startswith("Bearer "):
            given = header[len("Bearer "):].strip()
        else:
            given = parse_qs(query).get("access_token", [""])[0]
        return hmac.compare_digest(given.encode(), token.encode())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "avstream"

    def setup(self) -> None:
        self.timeout = self.server.sink.config.write_timeout_s
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("http: %s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - the base's name
        sink = self.server.sink
        sink.stats.add(NAME, "requests")
        url = urlsplit(self.path)
        if not sink.authorized(self.headers.get("Authorization"), url.query):
            sink.stats.add(NAME, "unauthorized")
            page = url.path in PAGE_PATHS  # the page, with no data: it says "token required"
            self._send(HTTPStatus.UNAUTHORIZED, PAGE_TYPE if page else JSON_TYPE, sink.page if page
                       else compact_json({"error": "a bearer token is required"}).encode(),
                       {"WWW-Authenticate": 'Bearer realm="avstream"'})
            return
        if url.path in PAGE_PATHS:
            self._send(HTTPStatus.OK, PAGE_TYPE, sink.page)
        elif url.path == "/status":
            self._send(HTTPStatus.OK, JSON_TYPE, compact_json(sink.status.snapshot()).encode())
        elif url.path == "/metrics":
            self._send(HTTPStatus.OK, sink.metrics_type, sink.metrics.exposition())
        elif url.path == "/events":
            self._events(sink)
        elif url.path == "/history":
            self._send(*http_answer(sink.config.history, sink.config.name, url.query))
        else:
            self._send(HTTPStatus.NOT_FOUND, JSON_TYPE,
                       compact_json({"error": f"no such path {url.path}; expected /, /status, "
                                              f"/metrics, /events or /history"}).encode())

    def _send(self, code: HTTPStatus, content_type: str, body: bytes,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _events(self, sink: HttpSink) -> None:
        client = sink.events.subscribe()
        if client is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, JSON_TYPE, compact_json(
                {"error": f"{sink.config.max_clients} /events clients already"}).encode())
            return
        cfg = sink.config
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.send_buffer_bytes)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(f"retry: {SSE_RETRY_MS}\n\n".encode())
            latest = sink.status.latest()
            if latest is not None:
                self.wfile.write(Event("hop", compact_json(latest)).encode())
            while True:
                try:
                    event = client.queue.get(timeout=cfg.keepalive_s)
                except queue.Empty:
                    self.wfile.write(b": keepalive\n\n")
                    continue
                if event.kind == CLOSE:
                    return
                self.wfile.write(event.encode())
                sink.stats.add(NAME, "events_sent")
        except TimeoutError:
            sink.stats.add(NAME, "clients_dropped")
            log.warning("http: an /events client (%s) read nothing for %g s; disconnected it "
                        "(%d events dropped for it)", self.address_string(),
                        cfg.write_timeout_s, client.dropped)
        except OSError:
            pass  # the browser went away
        finally:
            sink.events.unsubscribe(client)
