"""``/metrics`` against docs/metrics.md: every documented metric and label is served, nothing
else is, and the values mean what the doc says. Parsed with prometheus_client's own parser
from a real HTTP server; the last test runs a real replay (tiny bundle, PyAV-written clip) whose
camera is reported lost and back in the middle.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from net_env import CameraOutage, hop_record, require_python, run_info

from avstream.outputs.stats import OutputStats
from avstream.results.records import HopRecord, RunInfo
from avstream.results.summary import RunSummary

require_python("prometheus_client", "http")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from avstream.outputs.history import KEYS as HISTORY_KEYS  # noqa: E402
from avstream.outputs.http import KEYS as HTTP_KEYS  # noqa: E402
from avstream.outputs.http import HttpConfig, HttpSink  # noqa: E402
from avstream.outputs.metrics import OUTPUT_METRICS, OUTPUT_SUMS  # noqa: E402
from avstream.outputs.mqtt import KEYS as MQTT_KEYS  # noqa: E402
from avstream.results.counters import Counters  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
FORBIDDEN_LABELS = {"counter", "kind", "metric", "output", "name"}
"""Label names that would carry metric names (what the conventions forbid)."""


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """Metric -> (type, label names) from the tables of docs/metrics.md."""
    rows = re.findall(r"^\| `(avstream_\w+)` \| (\w+) \| ([^|]*) \|", DOC.read_text(), re.M)
    assert len(rows) > 30, "docs/metrics.md has no metric tables"
    return {name: (kind, frozenset(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def scrape(url: str) -> tuple[dict[str, tuple[str, frozenset[str]]], Samples]:
    """Served metric (as named in the doc) -> (type, label names); and every sample's value."""
    with urllib.request.urlopen(f"{url}metrics", timeout=5) as r:
        text = r.read().decode()
    served: dict[str, tuple[str, frozenset[str]]] = {}
    samples: Samples = {}
    for f in text_string_to_metric_families(text):
        name = {"counter": f"{f.name}_total", "info": f"{f.name}_info"}.get(f.type, f.name)
        labels = frozenset(k for s in f.samples for k in s.labels) - {"le"}
        served[name] = (f.type, labels)
        for s in f.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return served, samples


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    stats = OutputStats()
    stats.register("mqtt", MQTT_KEYS)  # as an MQTT sink beside it would
    stats.register("history", HISTORY_KEYS)  # and a --history one
    s = HttpSink(HttpConfig(host="127.0.0.1", port=0, name="room1"), stats)
    s.start(run_info())
    yield s
    s.close()


def test_every_documented_metric_and_label_is_served_and_nothing_else(sink: HttpSink) -> None:
    for k, label in enumerate(["park"] * 5 + ["tram"] * 6):
        sink.hop(hop_record(k, label))
    served, _ = scrape(sink.url)
    ours = {n: v for n, v in served.items()
            if n.startswith("avstream_") and not n.endswith("_created")}
    assert ours == documented()
    for name, (_, labels) in ours.items():
        assert "stream" in labels, name
        assert not labels & FORBIDDEN_LABELS, name
    standard = {"process_cpu_seconds_total", "process_resident_memory_bytes",
                "process_start_time_seconds", "process_open_fds", "python_info",
                "python_gc_collections_total"}
    assert standard <= set(served), sorted(served)
    for name in standard:
        assert f"`{name}`" in DOC.read_text(), f"{name} is served but not in docs/metrics.md"


def test_every_counter_has_its_own_documented_metric() -> None:
    """One metric per pipeline counter, and a named one (no generic fallback) per output
    counter that is not a sum of others."""
    doc = documented()
    for counter in Counters().to_dict():
        assert counter_name(counter) in doc, counter
    for output, keys in (("mqtt", MQTT_KEYS), ("http", HTTP_KEYS), ("history", HISTORY_KEYS)):
        for key in keys:
            assert (output, key) in OUTPUT_METRICS or (output, key) in OUTPUT_SUMS, (output, key)
            if (output, key) in OUTPUT_METRICS:
                assert f"avstream_{OUTPUT_METRICS[(output, key)][0]}_total" in doc, (output, key)


def counter_name(counter: str) -> str:
    from avstream.outputs.metrics import counter_metric

    return f"{counter_metric(counter)}_total"


def test_values_mean_what_the_doc_says(sink: HttpSink) -> None:
    t0 = time.time()
    labels = ["park"] * 5 + ["tram"] * 6
    for k, label in enumerate(labels):
        sink.hop(hop_record(k, label))
    stats = sink.stats
    for reason, n in (("dropped_queue_full", 2), ("dropped_disconnected", 3)):
        stats.add("mqtt", reason, n)
        stats.add("mqtt", "dropped", n)
    stats.add("mqtt", "published", 7)
    stats.add("history", "written", 4)
    sink.source_changed("camera", False, 1.0)
    _, v = scrape(sink.url)
    room = (("stream", "room1"),)
    last = hop_record(len(labels) - 1, "tram")
    assert v[("avstream_hops_total", room)] == len(labels) == last.counters.windows
    assert v[("avstream_hops_dropped_total", room)] == last.counters.hops_dropped == 1
    dropped = {r: v[("avstream_mqtt_messages_dropped_total", (("reason", r), *room))]
               for r in ("queue_full", "disconnected")}
    assert dropped == {"queue_full": 2, "disconnected": 3}
    assert sum(dropped.values()) == stats.of("mqtt")["dropped"]  # no series is a sum of others
    assert v[("avstream_mqtt_messages_published_total", room)] == 7
    assert v[("avstream_history_rows_written_total", room)] == 4
    assert v[("avstream_http_requests_total", room)] == 1  # this scrape
    assert v[("avstream_source_up", (("source", "camera"), *room))] == 0
    assert v[("avstream_source_up", (("source", "microphone"), *room))] == 1
    assert t0 - 5 <= v[("avstream_start_time_seconds", room)] <= t0
    assert t0 <= v[("avstream_last_hop_timestamp_seconds", room)] <= time.time()
    assert v[("avstream_label", (("label", "tram"), *room))] == 1
    assert sum(val for (n, _), val in v.items() if n == "avstream_label") == 1
    assert v[("avstream_confidence_ratio", room)] == pytest.approx(0.8)
    assert v[("avstream_probability_ratio", (("class", "tram"), *room))] == pytest.approx(0.8)
    assert v[("avstream_running", room)] == 1
    assert v[("avstream_hop_latency_seconds_count", (("stage", "frame"), *room))] == len(labels)
    assert v[("process_resident_memory_bytes", ())] > 1e6


class Probe:
    """Scrapes the HTTP sink's /metrics on every hop and once at the end (before that sink's
    own ``end()`` closes the server)."""

    def __init__(self, http: HttpSink) -> None:
        self.http = http
        self.camera_up: list[tuple[float, float]] = []
        self.final: Samples = {}
        self.summary: RunSummary | None = None

    def start(self, info: RunInfo) -> None:
        pass

    def hop(self, record: HopRecord) -> None:
        _, v = scrape(self.http.url)
        self.camera_up.append((record.t, v[("avstream_source_up",
                                            (("source", "camera"), ("stream", "clip")))]))

    def end(self, summary: RunSummary) -> None:
        self.summary = summary
        _, self.final = scrape(self.http.url)


def test_after_a_replay_the_counters_equal_the_summary(tiny_engine: object, av_file: Path) -> None:
    from avstream.driver import drive
    from avstream.stream.pipeline import PipelineConfig

    http = HttpSink(HttpConfig(host="127.0.0.1", port=0, name="clip"), OutputStats())
    probe = Probe(http)
    summary = drive(CameraOutage(av_file, 1.4, 2.2), tiny_engine, PipelineConfig(),  # type: ignore[arg-type]
                    [probe, http])
    assert probe.summary is summary and summary.windows > 5
    clip = (("stream", "clip"),)
    v = probe.final
    assert v[("avstream_hops_total", clip)] == summary.windows
    assert v[("avstream_frames_received_total", clip)] == summary.counters.frames_received
    assert v[("avstream_frames_encoded_total", clip)] == summary.counters.frames_encoded
    assert v[("avstream_hop_latency_seconds_count", (("stage", "total"), *clip))] == summary.windows
    ups = [up for t, up in probe.camera_up]
    assert ups[0] == 1 and 0 in ups and ups[-1] == 1, probe.camera_up  # lost, then back
    lost = [t for t, up in probe.camera_up if up == 0]
    assert 1.0 <= min(lost) and max(lost) <= 2.6, probe.camera_up  # windows near the outage
