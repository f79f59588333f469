"""Prometheus metrics for one stream (prometheus_client), by the Prometheus naming conventions:
one metric per quantity, its unit in the name, ``_total`` on counters, no metric names in
labels, no series that is the sum of others. docs/metrics.md lists every metric.

The hop latency histogram is observed on each hop; everything else is read from the stream's
status at scrape time, so a scrape costs the pipeline nothing. Every avstream metric carries a
``stream`` label (several streams can share one registry); the registry also holds
prometheus_client's standard ``process_*`` and ``python_*`` collectors.
"""

from __future__ import annotations

from collections.abc import Iterator
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

from avstream.outputs.status import StreamStatus
from avstream.scenes import UNKNOWN
from avstream.windows import MS_PER_S

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
}
"""(output, counter) -> (metric name without prefix and ``_total``, extra labels). Any other
output counter is ``avstream_<output>_<counter>_total``."""
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


class StreamMetrics:
    def __init__(self, status: StreamStatus, registry: CollectorRegistry | None = None) -> None:
        self.status = status
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self.latency = Histogram(
            "avstream_hop_latency_seconds",
            "Per-stage hop latency (stages as in the hop record's latency_ms).",
            labelnames=("stream", "stage"), buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.registry.register(_StreamCollector(status))

    def observe(self, latency_ms: dict[str, float]) -> None:
        for stage, ms in latency_ms.items():
            self.latency.labels(self.status.name, stage).observe(ms / MS_PER_S)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StreamCollector:
    def __init__(self, status: StreamStatus) -> None:
        self.status = status

    def describe(self) -> list[Metric]:
        return []  # collected fresh each scrape

    def collect(self) -> Iterator[Metric]:
        s = self.status.snapshot()
        yield from _counters(s)
        yield from _outputs(s)
        yield from _result(s)
        yield from _run(s)


def _counters(s: dict[str, Any]) -> Iterator[Metric]:
    name = s["stream"]
    for counter, value in s["counters"].items():
        family = CounterMetricFamily(
            counter_metric(counter), f"The pipeline counter {counter} (docs/metrics.md).",
            labels=["stream"])
        family.add_metric([name], value)
        yield family


def _outputs(s: dict[str, Any]) -> Iterator[Metric]:
    name = s["stream"]
    families: dict[str, CounterMetricFamily] = {}
    for output, counts in s["outputs"].items():
        for counter, value in counts.items():
            metric = output_metric(output, counter)
            if metric is None:
                continue
            metric_name, labels = metric
            family = families.get(metric_name)
            if family is None:
                family = families[metric_name] = CounterMetricFamily(
                    metric_name, f"The {output} output's {counter} (docs/metrics.md).",
                    labels=["stream", *labels])
            family.add_metric([name, *labels.values()], value)
    yield from families.values()


def _result(s: dict[str, Any]) -> Iterator[Metric]:
    name = s["stream"]
    label = GaugeMetricFamily("avstream_label", "1 for the current smoothed label, else 0.",
                              labels=["stream", "label"])
    for cls in (*s["classes"], UNKNOWN):
        label.add_metric([name, cls], 1.0 if cls == s["label"] else 0.0)
    yield label
    prob = GaugeMetricFamily("avstream_probability_ratio", "Smoothed probability per class (0-1).",
                             labels=["stream", "class"])
    for cls, p in s["probs"].items():
        prob.add_metric([name, cls], p)
    yield prob
    confidence = GaugeMetricFamily("avstream_confidence_ratio",
                                   "Smoothed probability of the current label (0-1).",
                                   labels=["stream"])
    confidence.add_metric([name], s["confidence"] or 0.0)
    yield confidence
    if s["wall_time"] is not None:
        last = GaugeMetricFamily("avstream_last_hop_timestamp_seconds",
                                 "Unix time of the latest hop record.", labels=["stream"])
        last.add_metric([name], s["wall_time"])
        yield last


def _run(s: dict[str, Any]) -> Iterator[Metric]:
    name = s["stream"]
    up = GaugeMetricFamily("avstream_source_up",
                           "1 while the input delivers, 0 after the source reported it lost.",
                           labels=["stream", "source"])
    for source, is_up in sorted(s["sources"].items()):
        up.add_metric([name, source], 1.0 if is_up else 0.0)
    yield up
    start = GaugeMetricFamily("avstream_start_time_seconds",
                              "Unix time the stream's outputs started.", labels=["stream"])
    start.add_metric([name], s["started_unix"])
    yield start
    running = GaugeMetricFamily("avstream_running", "1 while the run is going.",
                                labels=["stream"])
    running.add_metric([name], 1.0 if s["running"] else 0.0)
    yield running
    if s["source"] is not None:
        info = InfoMetricFamily("avstream_run", "What the run is.", labels=["stream"])
        providers = ",".join(sorted({p[0] for p in s["providers"].values() if p}))
        info.add_metric([name], {"source": s["source"], "paced": s["paced"] or "",
                                 "providers": providers, "precision": s["precision"] or ""})
        yield info
