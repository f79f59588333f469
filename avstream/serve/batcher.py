"""Many streams, one engine: requests that come due at about the same time run as one batch.

Each stream's pipeline gets a ``BatchedEngine``: the members of ``Engine`` (``format``,
``providers``, ``precision``, ``encode_frames``, ``infer``, ``infer_batch``), each call handed
to the ``Batcher`` and waited for. The batcher has one thread for frame encodes and one for
windows (as one stream's own process encodes frames in the background while it runs windows).
Each takes the first request waiting and every other one already queued, then waits for more
for at most ``max_wait_ms`` after the first was asked (less when every open stream that uses
the lane has one waiting, or at ``max_batch`` requests), and runs them together: all frame
encodes as one ``encode_frames`` call, the windows as one ``infer_batch`` call per set of
modalities (audio+video, audio only, video only). The graphs have a batch axis, so on a GPU a
batch costs far less than its requests one by one; on a CPU the gain is small (the cores are
already busy with one frame), and what is shared is the one set of sessions: the memory of one
model, not N.

The wait is bounded: a window never waits more than ``max_wait_ms`` for others, plus the
batch that is running when it arrives. Results are the engine's own, row for row.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from avstream.inference.session import default_intra_threads
from avstream.serve.config import BatchingConfig

log = logging.getLogger(__name__)

LANES: tuple[str, ...] = ("encode", "infer")
"""Kinds of request, each batched on its own thread: two graphs may run at once."""
POLL_S = 0.1
"""How often an idle batcher looks at its stop flag."""
MS_PER_S = 1000.0

Kind = Literal["encode", "infer"]


@dataclass(eq=False)
class Request:
    """One call of a stream's engine, waiting for (then holding) its result."""

    client: int
    kind: Kind
    args: tuple[Any, ...]
    t_submit: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    @property
    def modalities(self) -> tuple[bool, bool]:
        """(has audio, has frames) of an ``infer`` request: requests batch only with their kind."""
        return self.args[0] is not None, self.args[1] is not None


@dataclass
class BatchStats:
    """What the batcher did, for the serve summary and the benchmark."""

    batches: int = 0
    requests: int = 0
    largest: int = 0
    wait_ms_max: float = 0.0
    """Longest time a request waited before its batch ran."""

    def mean_size(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


def lane_threads(threads: int) -> int:
    """Intra-op threads per graph for a shared engine: 0 = the machine's default shared by the
    lanes (two graphs may run at once; more threads than cores only slows both)."""
    return threads if threads > 0 else max(1, default_intra_threads() // len(LANES))


class EngineFacade:
    """What a pipeline reads of an engine, copied from the real one; the calls go elsewhere."""

    def __init__(self, format: Any, providers: dict[str, tuple[str, ...]], precision: str) -> None:
        self.format = format
        self.providers = providers
        self.precision = precision

    def encode_frames(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def infer(self, waveform: np.ndarray | None, features: np.ndarray | None) -> Any:
        raise NotImplementedError

    def infer_batch(self, waveforms: np.ndarray | None, features: np.ndarray | None) -> list[Any]:
        """Row by row through ``infer`` (each row may join other streams' rows)."""
        n = len(waveforms) if waveforms is not None else len(features)  # type: ignore[arg-type]
        return [self.infer(None if waveforms is None else waveforms[i],
                           None if features is None else features[i]) for i in range(n)]


class _Lane:
    """One kind of request (frame encodes, or windows) with its own queue and thread: a window
    never waits behind other streams' frame encodes, which are needed only later (they run
    ahead of their windows), exactly as in one stream's own process."""

    def __init__(self, kind: Kind, batcher: Batcher) -> None:
        self.kind = kind
        self.batcher = batcher
        self.queue: queue.Queue[Request] = queue.Queue()
        self.stats = BatchStats()
        self.thread = threading.Thread(target=self._loop, name=f"avstream-batcher-{kind}",
                                       daemon=True)
        self.thread.start()

    def _gather(self, first: Request) -> list[Request]:
        config = self.batcher.config
        batch = [first]
        deadline = first.t_submit + config.max_wait_ms / MS_PER_S
        while len(batch) < config.max_batch:
            if self.batcher.all_present(self.kind, batch):
                break
            try:  # what is already waiting joins at once, even past the deadline
                batch.append(self.queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self.queue.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        stop = self.batcher.stopping
        while not stop.is_set():
            try:
                first = self.queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            batch = self._gather(first)
            s = self.stats
            s.batches += 1
            s.requests += len(batch)
            s.largest = max(s.largest, len(batch))
            waited = (time.monotonic() - min(r.t_submit for r in batch)) * MS_PER_S
            s.wait_ms_max = max(s.wait_ms_max, waited)
            run_batch(self.batcher.engine, batch)

    def fail_waiting(self) -> None:
        """After the thread ended: nobody is left to run what is queued; fail it, never hang."""
        while not self.queue.empty():
            req = self.queue.get_nowait()
            req.error = RuntimeError("the batcher closed before this request ran")
            req.done.set()


class Batcher:
    """Runs ``engine`` for every stream, one thread per kind of request; ``client()`` per
    stream."""

    def __init__(self, engine: Any, config: BatchingConfig) -> None:
        self.engine = engine
        self.config = config
        self._lock = threading.Lock()
        self._clients: dict[str, set[int]] = {k: set() for k in LANES}
        """Per lane, the open streams that have used it: a stream without a camera never
        encodes, and the encode lane must not wait for it."""
        self._next_id = 0
        self.stopping = threading.Event()
        self._lanes: dict[str, _Lane] = {k: _Lane(k, self) for k in LANES}  # type: ignore[arg-type]

    @property
    def stats(self) -> BatchStats:
        """Both lanes together."""
        lanes = [lane.stats for lane in self._lanes.values()]
        return BatchStats(batches=sum(s.batches for s in lanes),
                          requests=sum(s.requests for s in lanes),
                          largest=max(s.largest for s in lanes),
                          wait_ms_max=max(s.wait_ms_max for s in lanes))

    def client(self) -> BatchedEngine:
        """A stand-in engine for one stream; ``close()`` it when the stream ends."""
        with self._lock:
            cid = self._next_id
            self._next_id += 1
        return BatchedEngine(self, cid)

    def release(self, cid: int) -> None:
        with self._lock:
            for members in self._clients.values():
                members.discard(cid)

    def all_present(self, kind: Kind, batch: Sequence[Request]) -> bool:
        """Every open stream that uses this lane has a request in ``batch``: waiting longer
        gains nothing."""
        with self._lock:
            return self._clients[kind] <= {r.client for r in batch}

    def submit(self, cid: int, kind: Kind, *args: Any) -> Any:
        """Queue one request and wait for its result (its exception is raised here)."""
        if self.stopping.is_set():
            raise RuntimeError("the batcher is closed")
        req = Request(cid, kind, args)
        with self._lock:
            self._clients[kind].add(cid)
        self._lanes[kind].queue.put(req)
        req.done.wait()
        if req.error is not None:
            raise req.error
        return req.result

    def close(self) -> None:
        self.stopping.set()
        for lane in self._lanes.values():
            lane.thread.join()
            lane.fail_waiting()


def _settle(requests: Sequence[Request], results: Sequence[Any] | None,
            error: BaseException | None) -> None:
    for i, r in enumerate(requests):
        r.error = error
        r.result = None if results is None else results[i]
        r.done.set()


def run_batch(engine: Any, batch: Sequence[Request]) -> None:
    """Run a gathered batch on ``engine``: one encode call, one infer_batch per modality set."""
    encodes = [r for r in batch if r.kind == "encode"]
    if encodes:
        try:
            images = np.concatenate([r.args[0] for r in encodes])
            features = engine.encode_frames(images)
            bounds = np.cumsum([len(r.args[0]) for r in encodes])[:-1]
            _settle(encodes, np.split(features, bounds), None)
        except Exception as e:  # noqa: BLE001 - handed to each waiting stream
            _settle(encodes, None, e)
    groups: dict[tuple[bool, bool], list[Request]] = defaultdict(list)
    for r in batch:
        if r.kind == "infer":
            groups[r.modalities].append(r)
    for (has_audio, has_frames), reqs in groups.items():
        try:
            waveforms = np.stack([r.args[0] for r in reqs]) if has_audio else None
            features = np.stack([r.args[1] for r in reqs]) if has_frames else None
            _settle(reqs, engine.infer_batch(waveforms, features), None)
        except Exception as e:  # noqa: BLE001 - handed to each waiting stream
            _settle(reqs, None, e)


class BatchedEngine(EngineFacade):
    """One stream's engine: each call joins the batcher's next batch."""

    def __init__(self, batcher: Batcher, cid: int) -> None:
        e = batcher.engine
        super().__init__(e.format, e.providers, e.precision)
        self._batcher = batcher
        self._cid = cid

    def encode_frames(self, images: np.ndarray) -> np.ndarray:
        return self._batcher.submit(self._cid, "encode", images)

    def infer(self, waveform: np.ndarray | None, features: np.ndarray | None) -> Any:
        if waveform is None and features is None:
            raise ValueError("a window needs audio or frame features")
        return self._batcher.submit(self._cid, "infer", waveform, features)

    def close(self) -> None:
        """The stream ended: the batcher no longer waits for it."""
        self._batcher.release(self._cid)
