"""The HTTP output on its own: a real server on loopback, real sockets, hand-made hop records.

The end-to-end run (a replay watched by Chromium) is in test_outputs_e2e.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from net_env import CLASSES, hop_record, require_python, run_info

from avstream.errors import AvstreamError
from avstream.outputs.network import network_sinks
from avstream.outputs.stats import OutputStats
from avstream.results.summary import RunSummary

require_python("prometheus_client", "http")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from avstream.outputs.http import HttpConfig, HttpSink, parse_http_address  # noqa: E402

TOKEN = "s3cret-token"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def summary(windows: int = 0) -> RunSummary:
    from avstream.results.counters import Counters

    return RunSummary(info=run_info(), windows=windows, stream_start=0.0, stream_end=1.0,
                      wall_seconds=1.0, latency_ms={}, timeline=[], timeline_forgotten=0,
                      counters=Counters(), stopped="end of stream")


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    s = HttpSink(HttpConfig(host="127.0.0.1", port=0, name="room1"), OutputStats())
    s.start(run_info())
    yield s
    s.close()


def test_address_parsing_and_the_token_rule() -> None:
    assert parse_http_address("8080", "a") == HttpConfig("127.0.0.1", 8080, "a")
    assert parse_http_address("localhost:0", "a").loopback
    assert parse_http_address("[::1]:9", "a").host == "::1"
    with pytest.raises(AvstreamError, match="not a loopback address; expected --http-token"):
        parse_http_address("0.0.0.0:8080", "a")
    assert not parse_http_address("0.0.0.0:8080", "a", token=TOKEN).loopback
    for bad in ("http", "127.0.0.1:99999", ":80"):
        with pytest.raises(AvstreamError, match="--http"):
            parse_http_address(bad, "a")
    with pytest.raises(AvstreamError, match="--http-token without --http"):
        network_sinks(http_token=TOKEN)
    with pytest.raises(AvstreamError, match="--name"):
        network_sinks(http="0", name="a/b")


def test_status_page_and_unknown_path(sink: HttpSink) -> None:
    for k, label in enumerate(["park", "park", "metro"]):
        sink.hop(hop_record(k, label))
    code, body, _ = get(f"{sink.url}status")
    s = json.loads(body)
    assert code == 200
    assert (s["stream"], s["label"], s["running"], s["window"]) == ("room1", "metro", True, 2)
    assert s["classes"] == list(CLASSES) and s["probs"]["metro"] == pytest.approx(0.8)
    assert s["modalities"] == ["audio", "video"] and s["providers"]["audio"] == ["CPUExecutionProvider"]
    assert s["counters"]["windows"] == 3 and s["uptime_s"] > 0
    assert s["outputs"]["http"]["requests"] == 1
    code, body, headers = get(sink.url)
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b'new EventSource(api("events"))' in body
    assert get(f"{sink.url}nothing")[0] == 404


def test_token_refused_and_accepted() -> None:
    stats = OutputStats()
    s = HttpSink(HttpConfig(host="127.0.0.1", port=0, name="t", token=TOKEN), stats)
    try:
        assert s.description.startswith(f"http: {s.url} (loopback only; every request needs the "
                                        f"bearer token")
        s.start(run_info())
        for path in ("", "status", "metrics", "events"):
            code, _, headers = get(f"{s.url}{path}")
            assert code == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert get(f"{s.url}status", {"Authorization": "Bearer wrong"})[0] == 401
        assert get(f"{s.url}status?access_token=wrong")[0] == 401
        assert get(f"{s.url}status", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert get(f"{s.url}metrics?access_token={TOKEN}")[0] == 200
        assert stats.of("http")["unauthorized"] == 6
    finally:
        s.close()


def test_metrics_parse_with_prometheus_own_parser(sink: HttpSink) -> None:
    labels = ["park"] * 5 + ["tram"] * 6
    for k, label in enumerate(labels):
        sink.hop(hop_record(k, label))
    code, body, headers = get(f"{sink.url}metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in families.values() for s in f.samples}
    room = (("stream", "room1"),)
    assert families["avstream_hops"].type == "counter"
    assert value[("avstream_hops_total", room)] == len(labels)
    assert value[("avstream_hops_dropped_total", room)] == (len(labels) - 1) // 10
    assert value[("avstream_http_events_dropped_total", room)] == 0
    assert value[("avstream_label", (("label", "tram"), *room))] == 1
    assert value[("avstream_label", (("label", "park"), *room))] == 0
    assert value[("avstream_label", (("label", "unknown"), *room))] == 0
    assert families["avstream_hop_latency_seconds"].type == "histogram"
    assert value[("avstream_hop_latency_seconds_count", (("stage", "frame"), *room))] == len(labels)
    # 30 ms each: in the 0.05 s bucket, not in the 0.025 s one
    assert value[("avstream_hop_latency_seconds_bucket",
                  (("le", "0.05"), ("stage", "frame"), *room))] == len(labels)
    assert value[("avstream_hop_latency_seconds_bucket",
                  (("le", "0.025"), ("stage", "frame"), *room))] == 0
    assert value[("avstream_probability_ratio", (("class", "tram"), *room))] == pytest.approx(0.8)


def read_events(sock: socket.socket, n: int, timeout_s: float = 5.0) -> list[dict]:
    """Read until ``n`` data events have arrived; returns them parsed."""
    sock.settimeout(timeout_s)
    buf = b""
    while buf.count(b"\ndata: ") + buf.startswith(b"data: ") < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    body = buf.split(b"\r\n\r\n", 1)[1].decode()
    return [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")]


def open_events(sink: HttpSink, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", sink.port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 5
    while sink.events.client_count < (1 + len(getattr(sink, "_test_clients", []))):
        assert time.monotonic() < deadline, "the /events client was not registered"
        time.sleep(0.01)
    sink._test_clients = [*getattr(sink, "_test_clients", []), sock]  # type: ignore[attr-defined]
    return sock


def test_events_stream_one_record_per_hop(sink: HttpSink) -> None:
    sink.hop(hop_record(0, "park"))
    sock = open_events(sink)
    try:
        for k in range(1, 4):
            sink.hop(hop_record(k, "metro"))
        events = read_events(sock, 4)
        # the latest record on connecting, then one per hop
        assert [e["window"] for e in events] == [0, 1, 2, 3]
        assert events[-1]["label"] == "metro" and set(events[-1]["probs"]) == set(CLASSES)
    finally:
        sock.close()


def test_a_client_that_stops_reading_never_blocks_hops(sink: HttpSink) -> None:
    """A stalled reader loses events (counted); a reading one gets every event; hop() returns."""
    stalled = open_events(sink, rcvbuf=4096)  # never read from
    good = open_events(sink)
    n = 1000  # ~0.5 MB of events: far beyond the stalled client's queue and socket buffers
    received: list[dict] = []
    reader = threading.Thread(target=lambda: received.extend(read_events(good, n, 30.0)))
    reader.start()
    try:
        for k in range(n):
            sink.hop(hop_record(k, CLASSES[(k // 50) % len(CLASSES)]))
            time.sleep(0.002)  # 100x the real hop rate; the reading client keeps up
        reader.join(30)
        assert [e["window"] for e in received] == list(range(n))  # nothing lost for it
        stats = sink.stats.of("http")
        assert stats["dropped"] > 0  # the stalled one's queue overflowed, and it was counted
    finally:
        stalled.close()
        good.close()


def test_end_closes_the_server_and_reports_counts() -> None:
    stats = OutputStats()
    s = HttpSink(HttpConfig(host="127.0.0.1", port=0, name="e"), stats)
    s.start(run_info())
    s.hop(hop_record(0, "park"))
    get(f"{s.url}status")
    result = summary(1)
    s.end(result)
    assert result.outputs["http"]["requests"] == 1
    assert "output http: requests=1 unauthorized=0 clients=0 events_sent=0 dropped=0 " \
           "clients_dropped=0" in result.render_text()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
