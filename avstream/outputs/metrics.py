"""Prometheus metrics of one stream (prometheus_client), for ``GET /metrics``.

Latencies are observed per hop into histograms; everything else is read from the stream's
status at scrape time, so a scrape costs the pipeline nothing. Every metric carries a ``stream``
label (several streams can share one registry later). Names and labels: README, "HTTP".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
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
DROP_KINDS: dict[str, str] = {
    "hops": "hops_dropped",
    "windows_without_media": "windows_without_media",
    "windows_invalid": "windows_invalid",
    "corrupt_packets": "corrupt_packets",
    "frames_skipped": "frames_skipped",
    "frames_overflowed": "frames_overflowed",
    "audio_overflows": "audio_overflows",
    "audio_samples": "audio_samples_dropped",
    "audio_late_samples": "audio_late_samples",
}
"""``avstream_dropped_total{kind}`` -> the pipeline counter it reads (README, "Counters")."""
OUTPUT_DROP_KINDS: dict[str, str] = {"mqtt": "mqtt_messages", "http": "http_events"}


class StreamMetrics:
    def __init__(self, status: StreamStatus, registry: CollectorRegistry | None = None) -> None:
        self.status = status
        self.registry = registry or CollectorRegistry()
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
        name = s["stream"]
        counters: dict[str, Any] = s["counters"]
        outputs: dict[str, dict[str, int]] = s["outputs"]

        windows = CounterMetricFamily("avstream_windows", "Windows inferred (one hop record each).",
                                      labels=["stream"])
        windows.add_metric([name], counters.get("windows", 0))
        yield windows

        dropped = CounterMetricFamily(
            "avstream_dropped", "Things skipped or lost, by kind.", labels=["stream", "kind"])
        for kind, field in DROP_KINDS.items():
            dropped.add_metric([name, kind], counters.get(field, 0))
        for output, kind in OUTPUT_DROP_KINDS.items():
            if output in outputs:
                dropped.add_metric([name, kind], outputs[output]["dropped"])
        yield dropped

        pipeline = CounterMetricFamily(
            "avstream_pipeline", "Every pipeline counter of the hop record, by name.",
            labels=["stream", "counter"])
        for key, value in counters.items():
            pipeline.add_metric([name, key], value)
        yield pipeline

        out = CounterMetricFamily("avstream_output", "What each network output sent and dropped.",
                                  labels=["stream", "output", "counter"])
        for output, counts in outputs.items():
            for key, value in counts.items():
                out.add_metric([name, output, key], value)
        yield out

        label = GaugeMetricFamily("avstream_label", "1 for the current smoothed label, else 0.",
                                  labels=["stream", "label"])
        for cls in (*s["classes"], UNKNOWN):
            label.add_metric([name, cls], 1.0 if cls == s["label"] else 0.0)
        yield label

        prob = GaugeMetricFamily("avstream_probability", "Smoothed probability per class.",
                                 labels=["stream", "class"])
        for cls, p in s["probs"].items():
            prob.add_metric([name, cls], p)
        yield prob

        confidence = GaugeMetricFamily("avstream_confidence",
                                       "Smoothed probability of the current label.",
                                       labels=["stream"])
        confidence.add_metric([name], s["confidence"] or 0.0)
        yield confidence

        up = GaugeMetricFamily("avstream_uptime_seconds", "Seconds since the outputs started.",
                               labels=["stream"])
        up.add_metric([name], s["uptime_s"])
        yield up

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
