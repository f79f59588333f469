"""``avstream serve CONFIG --ray [ADDRESS]``: inference as a Ray Serve deployment, streams as actors.

- ``InferenceModel``: a Ray Serve deployment holding the bundle's sessions. Its methods
  ``encode`` and ``infer`` are ``@serve.batch``-ed: requests from every stream that arrive within
  ``max_batch_wait_ms`` (up to ``max_batch``) run together, grouped exactly as the local batcher
  groups them (``avstream.serve.batcher.run_batch``); frame encodes and windows are two
  batched methods whose batches run side by side. Its replicas ask for a GPU when the
  cluster has one (and then run CUDA, which ``providers`` reports).
- ``StreamActor``: one per stream, running the same ``StreamRunner`` as a local serve (capture,
  windowing, smoothing, outputs) with a ``RemoteEngine`` whose calls go to the deployment.
  ``place = "NAME"`` in the stream's config makes the actor need the custom resource NAME, so it
  runs on the node started with it (``ray start --resources='{"NAME": 1}'``): where its camera
  and microphone are, and where its outputs are written.

No HTTP proxy is started (``proxy_location="Disabled"``): the deployment is reached only
through handles inside the Ray cluster.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import ray
from ray import serve

from avstream.cluster import LOCAL, connect
from avstream.inference.api import EngineFacade
from avstream.serve.batcher import lane_threads
from avstream.serve.config import ServeConfig, StreamConfig
from avstream.serve.local import STOP_GRACE_S, WATCH_S, ServeReport
from avstream.serve.requests import BatchStats, Request, run_batch, total
from avstream.serve.streams import StreamOutcome, StreamRunner
from avstream.timebase import MS_PER_S

log = logging.getLogger(__name__)

APP_NAME = "avstream"
STREAM_ACTOR_CPUS = 0.25
"""CPU a stream's actor reserves: decoding, resizing and windowing, not the graphs."""
RESOURCE_SHARE = 0.001
"""How much of a ``place`` resource a stream's actor takes: any number of streams fit on it."""
OK, FAILED = "ok", "error"


class BatchLedger:
    """What each replica's batches were: every replica reports here (a Ray actor, started in
    ``serve_ray``), so the summary can say how the streams' requests were shared."""

    def __init__(self) -> None:
        self.replicas: dict[str, BatchStats] = {}

    def add(self, replica: str, rows: int) -> None:
        s = self.replicas.setdefault(replica, BatchStats())
        s.batches += 1
        s.requests += rows
        s.largest = max(s.largest, rows)

    def stats(self) -> dict[str, BatchStats]:
        return self.replicas


class InferenceModel:
    """The deployment's class (``serve.deployment`` is applied in ``deploy``)."""

    def __init__(self, model: str, provider: str | None, threads: int, precision: str,
                 max_batch: int, wait_s: float, ledger: Any) -> None:
        from avstream.driver import open_engine

        self.engine = open_engine(model, provider, threads, precision)
        self.ledger = ledger
        self.replica = serve.get_replica_context().replica_id.unique_id
        for method in (self.encode, self.infer):
            method.set_max_batch_size(max_batch)
            method.set_batch_wait_timeout_s(wait_s)

    def describe(self) -> tuple[Any, dict[str, tuple[str, ...]], str]:
        """What a stand-in engine copies: format, providers really running, precision."""
        e = self.engine
        return e.format, e.providers, e.precision

    @serve.batch  # sized in __init__ from the config (set_max_batch_size, ...)
    async def encode(self, items: list[tuple[Any, ...]]) -> list[tuple[str, Any]]:
        """A batch of frame encodes -> (ok, features) or (error, message) each."""
        return await self._run("encode", items)

    @serve.batch
    async def infer(self, items: list[tuple[Any, ...]]) -> list[tuple[str, Any]]:
        """A batch of windows -> (ok, InferenceResult) or (error, message) each."""
        return await self._run("infer", items)

    async def _run(self, kind: str, items: list[tuple[Any, ...]]) -> list[tuple[str, Any]]:
        # In a thread: an encode batch and a window batch run at the same time, as in the
        # local batcher's two lanes.
        requests = [Request(client=i, kind=kind, args=args)  # type: ignore[arg-type]
                    for i, args in enumerate(items)]
        await asyncio.to_thread(run_batch, self.engine, requests)
        self.ledger.add.remote(self.replica, len(requests))  # not waited for
        return [(OK, r.result) if r.error is None else (FAILED, f"{type(r.error).__name__}: "
                                                                f"{r.error}") for r in requests]


class RemoteEngine(EngineFacade):
    """A stream's engine inside its actor: each call is one request to the deployment."""

    def __init__(self, handle: Any, described: tuple[Any, dict[str, tuple[str, ...]], str]) -> None:
        super().__init__(*described)
        self._handle = handle

    def _call(self, kind: str, *args: Any) -> Any:
        status, value = getattr(self._handle, kind).remote(args).result()
        if status != OK:
            raise RuntimeError(f"the inference deployment failed: {value}")
        return value

    def encode_frames(self, images: Any) -> Any:
        return self._call("encode", images)

    def infer(self, waveform: Any, features: Any) -> Any:
        if waveform is None and features is None:
            raise ValueError("a window needs audio or frame features")
        return self._call("infer", waveform, features)

    def close(self) -> None:
        pass


class StreamActor:
    """One stream in a Ray actor (``ray.remote`` is applied in ``start_streams``)."""

    def __init__(self, config: StreamConfig, handle: Any, described: tuple[Any, ...]) -> None:
        self.runner = StreamRunner(config, lambda: RemoteEngine(handle, described))  # type: ignore[arg-type]

    def run(self) -> StreamOutcome:
        return self.runner.run()

    def stop(self) -> None:
        self.runner.stop()


def deploy(config: ServeConfig, ledger: Any) -> Any:
    """Start Ray Serve (no HTTP) and the inference deployment (``num_replicas`` copies, each
    reporting its batches to ``ledger``); its handle."""
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    b = config.batching
    cpus = config.replica_cpus if config.replica_cpus is not None else max(1, config.threads)
    app = serve.deployment(
        InferenceModel, name="inference", num_replicas=config.num_replicas,
        max_ongoing_requests=max(2 * b.max_batch, 2 * len(config.streams)),
        ray_actor_options={"num_cpus": cpus, "num_gpus": gpus},
    ).bind(str(config.model), config.provider, lane_threads(config.threads), config.precision,
           b.max_batch, b.max_wait_ms / MS_PER_S, ledger)
    serve.start(proxy_location="Disabled")
    return serve.run(app, name=APP_NAME, route_prefix=None)


def start_streams(config: ServeConfig, handle: Any) -> list[Any]:
    described = handle.describe.remote().result()
    actor_cls = ray.remote(max_concurrency=2)(StreamActor)
    actors = []
    for s in config.streams:
        resources = {} if s.place is None else {s.place: RESOURCE_SHARE}
        actors.append(actor_cls.options(num_cpus=STREAM_ACTOR_CPUS, resources=resources,
                                         name=f"avstream-stream-{s.name}").remote(
            s, handle, described))
    return actors


def serve_ray(config: ServeConfig, address: str, stop: threading.Event) -> ServeReport:
    """``serve_local`` on Ray: return when every stream has ended, or after ``stop``."""
    started_here = address == LOCAL and not ray.is_initialized()
    connect(address)
    try:
        ledger = ray.remote(num_cpus=0)(BatchLedger).remote()
        handle = deploy(config, ledger)
        actors = start_streams(config, handle)
        runs = [a.run.remote() for a in actors]
        pending = list(runs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=WATCH_S)
            if pending and stop.is_set():
                ray.get([a.stop.remote() for a in actors])
                ray.wait(pending, num_returns=len(pending), timeout=STOP_GRACE_S)
                break
        outcomes = []
        for s, ref in zip(config.streams, runs, strict=True):
            try:
                outcomes.append(ray.get(ref, timeout=0))
            except Exception as e:  # noqa: BLE001 - the actor died or did not stop: report it
                outcomes.append(StreamOutcome(s.name, stopped="error",
                                              error=f"{type(e).__name__}: {e}"))
        for a in actors:
            ray.kill(a)
        replicas = ray.get(ledger.stats.remote())
        ray.kill(ledger)
        return ServeReport(tuple(outcomes), total(list(replicas.values())), replicas)
    finally:
        serve.delete(APP_NAME)
        if started_here:
            serve.shutdown()
            ray.shutdown()
