"""The HTTP server under ``--http`` and serve's site page: listening, the token check, replies.

What each path answers is the app's (``http.py``: one stream; ``site.py``: every stream of a
serve process); this module only listens, checks the token (``HttpConfig.authorized``) and writes
what the app answers. The server runs on its own threads (stdlib ``ThreadingHTTPServer``, one
thread per request), so a slow client never holds the pipeline.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Protocol
from urllib.parse import urlsplit

from avstream.errors import AvstreamError
from avstream.outputs.http_config import HttpConfig
from avstream.outputs.stats import compact_json

log = logging.getLogger(__name__)

PAGE_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/json"
SHUTDOWN_POLL_S = 0.1
"""How soon the server notices ``close()``."""


@dataclass(frozen=True)
class Reply:
    code: HTTPStatus
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Streamed(Protocol):
    """A reply written over time (``/events``), on the request's own thread."""

    def serve_events(self, handler: Handler) -> None: ...


class App(Protocol):
    config: HttpConfig

    def answer(self, path: str, query: str, authorized: bool) -> Reply | Streamed: ...


def json_reply(code: HTTPStatus, body: Any) -> Reply:
    return Reply(code, JSON_TYPE, compact_json(body).encode())


def not_found(path: str, expected: str) -> Reply:
    return json_reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {path}; expected {expected}"})


def unauthorized(page: bytes | None) -> Reply:
    """401; a page is still sent (with no data: it says "token required"), JSON otherwise."""
    body = page if page is not None else compact_json(
        {"error": "a bearer token is required"}).encode()
    return Reply(HTTPStatus.UNAUTHORIZED, PAGE_TYPE if page is not None else JSON_TYPE, body,
                 {"WWW-Authenticate": 'Bearer realm="avstream"'})


def redirect(location: str) -> Reply:
    return Reply(HTTPStatus.MOVED_PERMANENTLY, JSON_TYPE, b"{}", {"Location": location})


def static_page(name: str) -> bytes:
    return resources.files("avstream.outputs").joinpath(f"static/{name}").read_bytes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: App

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http: request from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class HttpServer:
    """Listens from construction until ``close()``; every GET goes to ``app.answer``."""

    def __init__(self, config: HttpConfig, app: App) -> None:
        self.config = config
        server_class = _Server6 if ":" in config.host else _Server
        try:
            self._server = server_class((config.host, config.port), Handler)
        except OSError as e:
            raise AvstreamError(f"--http {config.host}:{config.port} cannot listen "
                                f"({e.strerror}); expected a free port on a local address") from e
        self._server.app = app
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL_S,),
                                        name="avstream-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}/"

    def access(self, token_option: str = "--http-token") -> str:
        """How it is reached, for a start-up line."""
        access = (f"every request needs the bearer token ({token_option})" if self.config.token
                  else "no token")
        where = "loopback only" if self.config.loopback else "NOT loopback"
        return f"{self.url} ({where}; {access})"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Served:
    """An app with its own server: ``listen()`` starts it (the app's fields set first), then
    ``url``, ``port``, the start-up ``description`` and ``close()``."""

    config: HttpConfig
    ROUTES = ""
    """What it serves, for the start-up line."""
    TOKEN_OPTION = "--http-token"
    """Where its token is set, for the start-up line."""

    def listen(self) -> None:
        self._server = HttpServer(self.config, self)  # type: ignore[arg-type]
        self.port = self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def description(self) -> str:
        return f"http: {self._server.access(self.TOKEN_OPTION)}: {self.ROUTES}"

    def close(self) -> None:
        """Stop listening."""
        self._server.close()


class Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "avstream"

    def setup(self) -> None:
        self.timeout = self.server.app.config.write_timeout_s
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("http: %s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - the base's name
        app = self.server.app
        url = urlsplit(self.path)
        ok = app.config.authorized(self.headers.get("Authorization"), url.query)
        answer = app.answer(url.path, url.query, ok)
        if isinstance(answer, Reply):
            self.send(answer)
        else:
            answer.serve_events(self)

    def send(self, reply: Reply) -> None:
        self.send_response(reply.code)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(reply.body)
