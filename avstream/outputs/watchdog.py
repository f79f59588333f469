"""systemd's service notifications, fed by the pipeline's own heartbeat.

Under a ``Type=notify`` unit (deploy/avstream.service) systemd sets ``NOTIFY_SOCKET``; this sink
then sends ``READY=1`` when the stream starts, ``WATCHDOG=1`` (with a ``STATUS=`` line for
``systemctl status``) on every hop, and ``STOPPING=1`` when it ends. The heartbeat comes from the
hop path, not from a timer thread: a loop that stalls (a hung engine, a source that blocks)
stops feeding it, and after ``WatchdogSec=`` systemd kills and restarts the service.

The datagram is the documented sd_notify protocol (one ``KEY=VALUE`` per line to a unix
datagram socket; a leading ``@`` is Linux's abstract namespace), a dozen lines with the socket
module. With several streams in one process (``avstream serve``) they share one notifier:
``READY=1`` when the first starts, ``STOPPING=1`` when the last ends, and any stream's hop feeds
the watchdog (so it catches a stalled process, not one stalled stream: that is what
``avstream_source_up`` and the counters are for).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Final

from avstream.results.records import HopRecord, RunInfo
from avstream.results.sink import Sink
from avstream.results.summary import RunSummary

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV: Final[str] = "NOTIFY_SOCKET"
READY: Final[str] = "READY=1"
WATCHDOG: Final[str] = "WATCHDOG=1"
STOPPING: Final[str] = "STOPPING=1"


def notify_address(value: str | None) -> str | None:
    """The socket address in ``$NOTIFY_SOCKET``: a path, or ``@name`` for an abstract socket."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if not value.startswith("/"):
        log.warning("%s=%r is neither an absolute path nor @abstract; no notifications sent",
                    NOTIFY_SOCKET_ENV, value)
        return None
    return value


class Notifier:
    """Sends sd_notify datagrams; counts the streams that run so READY/STOPPING go once."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._lock = threading.Lock()
        self._running = 0
        self._failed = False

    def send(self, message: str) -> None:
        """One datagram; a failure is logged once and never stops the pipeline (systemd gone
        is no reason to stop classifying; its watchdog restarts us if it cares)."""
        try:
            self._sock.sendto(message.encode(), self.address)
        except OSError as e:
            if not self._failed:
                log.warning("cannot notify systemd at %s (%s); the watchdog is not fed",
                            self.address.replace("\0", "@"), e.strerror)
            self._failed = True

    def started(self) -> None:
        with self._lock:
            self._running += 1
            first = self._running == 1
        if first:
            self.send(f"{READY}\nSTATUS=classifying")

    def alive(self, status: str) -> None:
        self.send(f"{WATCHDOG}\nSTATUS={status}")

    def ended(self) -> None:
        with self._lock:
            self._running = max(0, self._running - 1)
            last = self._running == 0
        if last:
            self.send(f"{STOPPING}\nSTATUS=stopping")


class WatchdogSink:
    """A sink that turns the pipeline's start, hops and end into notifications."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def start(self, info: RunInfo) -> None:
        self.notifier.started()

    def hop(self, record: HopRecord) -> None:
        self.notifier.alive(f"window {record.window}: {record.label} {record.confidence:.2f}")

    def end(self, summary: RunSummary) -> None:
        self.notifier.ended()


_shared: Notifier | None = None
_shared_lock = threading.Lock()


def watchdog_sinks() -> list[Sink]:
    """``[WatchdogSink]`` when systemd asked for notifications (``$NOTIFY_SOCKET``), else ``[]``."""
    global _shared
    address = notify_address(os.environ.get(NOTIFY_SOCKET_ENV))
    if address is None:
        return []
    with _shared_lock:
        if _shared is None or _shared.address != address:
            _shared = Notifier(address)
        return [WatchdogSink(_shared)]
