"""Where an HTTP server listens, and who may ask it: ``[HOST:]PORT`` and the bearer-token rule.

``--http [HOST:]PORT`` (and serve's ``http`` keys) listen on 127.0.0.1 unless a host is given;
any other address needs a bearer token, which every request must then carry.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from avstream.errors import AvstreamError

LOOPBACK = "127.0.0.1"
BEARER = "Bearer "
SITE_NAME = "site"
"""The ``HttpConfig.name`` of serve's site server (each stream's endpoints carry their own)."""


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

    def authorized(self, header: str | None, query: str) -> bool:
        """The request carries the token (as ``Authorization: Bearer`` or ``?access_token=``),
        or none is needed."""
        if self.token is None:
            return True
        if header is not None and header.startswith(BEARER):
            given = header[len(BEARER):].strip()
        else:
            given = parse_qs(query).get("access_token", [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())


def parse_http_address(text: str, name: str, token: str | None = None) -> HttpConfig:
    """``[HOST:]PORT`` -> HttpConfig; a non-loopback host without a token is refused."""
    spec = str(text).strip()
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
