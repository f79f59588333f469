"""Server-Sent Events fan-out: one bounded queue per client, filled without ever waiting.

``publish()`` runs on the pipeline thread: it puts the event on every client's queue with
``put_nowait``; a client whose queue is full loses that event (counted, per client and in
``OutputStats``). Each client's own HTTP thread takes from its queue and writes; a client that
stops reading blocks only that thread, until the socket's write timeout drops the client.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from avstream.outputs.stats import OutputStats

CLOSE = "close"
"""Event kind that tells a client's thread to finish (end of run, server stopping)."""


@dataclass(frozen=True)
class Event:
    kind: str
    """SSE event name: "hop" is sent as the default ``message`` event; others by name."""
    data: str
    """One line of JSON."""

    def encode(self) -> bytes:
        head = "" if self.kind == "hop" else f"event: {self.kind}\n"
        return f"{head}data: {self.data}\n\n".encode()


class Client:
    def __init__(self, capacity: int) -> None:
        self.queue: queue.Queue[Event] = queue.Queue(maxsize=capacity)
        self.dropped = 0


class Broadcaster:
    def __init__(self, output: str, stats: OutputStats, capacity: int, max_clients: int) -> None:
        self.output = output
        self.stats = stats
        self.capacity = capacity
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._clients: list[Client] = []

    def subscribe(self) -> Client | None:
        """A new client, or None when ``max_clients`` are already connected."""
        with self._lock:
            if len(self._clients) >= self.max_clients:
                return None
            client = Client(self.capacity)
            self._clients.append(client)
        self.stats.add(self.output, "clients")
        return client

    def unsubscribe(self, client: Client) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def publish(self, event: Event) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.queue.put_nowait(event)
            except queue.Full:
                client.dropped += 1
                self.stats.add(self.output, "dropped")

    def close(self) -> None:
        """Tell every client to finish; from a full queue the oldest events make room (counted)."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            while True:
                try:
                    client.queue.put_nowait(Event(CLOSE, ""))
                    break
                except queue.Full:
                    try:
                        client.queue.get_nowait()
                    except queue.Empty:
                        continue
                    client.dropped += 1
                    self.stats.add(self.output, "dropped")
