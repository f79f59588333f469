"""Prometheus metrics for one stream (prometheus_client), by the Prometheus naming conventions:
one metric per quantity, its unit in the name, ``_total`` on counters, no metric names in
labels, no series that is the sum of others. docs/metrics.md lists every metric.

The hop latency histogram is observed on each hop; everything else is read from the stream's
status at scrape time, so a scrape costs the pipeline nothing. Every avstream metric carries a
``stream`` label (several streams can share one registry); the registry also holds
prometheus_client's standard ``process_*`` and ``python_*`` collectors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from avstream.outputs.http_server import Reply
from avstream.outputs.status import StreamStatus
from avstream.scenes import UNKNOWN
from avstream.stream.windows import MS_PER_S

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""1 ms (smoothing) to 10 s (a hop far behind the wall clock)."""
PREFIX: Final[str] = "avstream_"
COUNTER_RENAMES: Final[dict[str, str]] = {"windows": "hops"}
"""Pipeline counters whose metric is not ``avstream_<counter>_total``: ``windows`` counts the
hops inferred (one hop record each), next to ``hops_dropped``."""
OUTPUT_METRICS: Final[dict[tuple[str, str], tuple[str, dict[str, str]]]] = {
    ("mqtt", "published"): ("mqtt_messages_published", {}),
    ("mqtt", "dropped_queue_full"): ("mqtt_messages_dropped", {"reason": "queue_full"}),
    ("mqtt", "dropped_disconnected"): ("mqtt_messages_dropped", {"reason": "disconnected"}),
    ("mqtt", "connects"): ("mqtt_connects", {}),
    ("mqtt", "disconnects"): ("mqtt_disconnects", {}),
    ("http", "requests"): ("http_requests", {}),
    ("http", "unauthorized"): ("http_requests_unauthorized", {}),
    ("http", "clients"): ("http_event_clients", {}),
    ("http", "events_sent"): ("http_events_sent", {}),
    ("http", "dropped"): ("http_events_dropped", {}),
    ("http", "clients_dropped"): ("http_event_clients_dropped", {}),
    ("history", "written"): ("history_rows_written", {}),
    ("history", "dropped"): ("history_rows_dropped", {}),
    ("history", "pruned"): ("history_rows_pruned", {}),
}
"""(output, counter) -> (metric name without prefix and ``_total``, extra labels); every
counter an output registers is here or in ``OUTPUT_SUMS`` (a test holds it). A counter missing
from both would still be served, as ``avstream_<output>_<counter>_total``."""
OUTPUT_SUMS: Final[frozenset[tuple[str, str]]] = frozenset({("mqtt", "dropped")})
"""Output counters that are the sum of others (the summary line's totals): not exported, the
parts are (``sum by (stream)`` gives them back)."""


def counter_metric(counter: str) -> str:
    """The metric name (without ``_total``) of the pipeline counter ``counter``."""
    return PREFIX + COUNTER_RENAMES.get(counter, counter)


def output_metric(output: str, counter: str) -> tuple[str, dict[str, str]] | None:
    """The metric name (without ``_total``) and extra labels of an output counter; None for a
    sum of other counters."""
    if (output, counter) in OUTPUT_SUMS:
        return None
    name, labels = OUTPUT_METRICS.get((output, counter), (f"{output}_{counter}", {}))
    return PREFIX + name, labels


class MetricsRegistry:
    """One registry for the process: prometheus_client's ``process_*``/``python_*`` collectors,
    one latency histogram, and one collector over every stream added (each family once, with a
    sample per stream: the text exposition allows no family twice)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.latency = Histogram(
            "avstream_hop_latency_seconds",
            "Per-stage hop latency (stages as in the hop record's latency_ms).",
            labelnames=("stream", "stage"), buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self._streams = _StreamsCollector()
        self.registry.register(self._streams)

    def add(self, status: StreamStatus) -> StreamMetrics:
        """A stream's metrics from now on, under its ``stream`` label."""
        self._streams.add(status)
        return StreamMetrics(self, status)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def reply(self) -> Reply:
        return Reply(HTTPStatus.OK, CONTENT_TYPE, self.exposition())


class StreamMetrics:
    """One stream's share of a ``MetricsRegistry``: what is observed per hop."""

    def __init__(self, registry: MetricsRegistry, status: StreamStatus) -> None:
        self.status = status
        self._latency = registry.latency

    def observe(self, latency_ms: dict[str, float]) -> None:
        for stage, ms in latency_ms.items():
            self._latency.labels(self.status.name, stage).observe(ms / MS_PER_S)


class _Families:
    """Metric families by name, each made once, whichever stream adds to it first."""

    def __init__(self) -> None:
        self.by_name: dict[str, Metric] = {}

    def __call__(self, kind: type, name: str, doc: str, labels: list[str]) -> Any:
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = kind(name, doc, labels=labels)
        return family


class _StreamsCollector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: list[StreamStatus] = []

    def add(self, status: StreamStatus) -> None:
        with self._lock:
            self._statuses.append(status)

    def describe(self) -> list[Metric]:
        return []  # collected fresh each scrape

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            statuses = list(self._statuses)
        families = _Families()
        for status in statuses:
            s = status.snapshot()
            for part in (_counters, _outputs, _result, _run):
                part(s, families)
        yield from families.by_name.values()


def _counters(s: dict[str, Any], family: _Families) -> None:
    name = s["stream"]
    for counter, value in s["counters"].items():
        family(CounterMetricFamily, counter_metric(counter),
               f"The pipeline counter {counter} (docs/metrics.md).", ["stream"]
               ).add_metric([name], value)


def _outputs(s: dict[str, Any], family: _Families) -> None:
    name = s["stream"]
    for output, counts in s["outputs"].items():
        for counter, value in counts.items():
            metric = output_metric(output, counter)
            if metric is None:
                continue
            metric_name, labels = metric
            family(CounterMetricFamily, metric_name,
                   f"The {output} output's {counter} (docs/metrics.md).", ["stream", *labels]
                   ).add_metric([name, *labels.values()], value)


def _result(s: dict[str, Any], family: _Families) -> None:
    name = s["stream"]
    label = family(GaugeMetricFamily, "avstream_label",
                   "1 for the current smoothed label, else 0.", ["stream", "label"])
    for cls in (*s["classes"], UNKNOWN):
        label.add_metric([name, cls], 1.0 if cls == s["label"] else 0.0)
    prob = family(GaugeMetricFamily, "avstream_probability_ratio",
                  "Smoothed probability per class (0-1).", ["stream", "class"])
    for cls, p in s["probs"].items():
        prob.add_metric([name, cls], p)
    family(GaugeMetricFamily, "avstream_confidence_ratio",
           "Smoothed probability of the current label (0-1).", ["stream"]
           ).add_metric([name], s["confidence"] or 0.0)
    if s["wall_time"] is not None:
        family(GaugeMetricFamily, "avstream_last_hop_timestamp_seconds",
               "Unix time of the latest hop record.", ["stream"]).add_metric([name], s["wall_time"])


def _run(s: dict[str, Any], family: _Families) -> None:
    name = s["stream"]
    up = family(GaugeMetricFamily, "avstream_source_up",
                "1 while the input delivers, 0 after the source reported it lost.",
                ["stream", "source"])
    for source, is_up in sorted(s["sources"].items()):
        up.add_metric([name, source], 1.0 if is_up else 0.0)
    family(GaugeMetricFamily, "avstream_start_time_seconds",
           "Unix time the stream's outputs started.", ["stream"]
           ).add_metric([name], s["started_unix"])
    family(GaugeMetricFamily, "avstream_running", "1 while the run is going.", ["stream"]
           ).add_metric([name], 1.0 if s["running"] else 0.0)
    if s["source"] is not None:
        providers = ",".join(sorted({p[0] for p in s["providers"].values() if p}))
        family(InfoMetricFamily, "avstream_run", "What the run is.", ["stream"]).add_metric(
            [name], {"source": s["source"], "paced": s["paced"] or "", "providers": providers,
                     "precision": s["precision"] or ""})
