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

Past capacity, load is shed fairly. A window comes with its deadline (``infer_due``: the
pipeline's drop rule, after which a newer window of its stream is due), and
one taken up after it is dropped, not run: the stream counts it in ``hops_dropped``, as one
pipeline on its own engine does, and goes on with its newest window. When more windows wait than
a batch takes, the streams served least so far go first, and a window that would pass its
deadline before the batch being started ends is dropped at once, so that its stream's next
window is there for the next batch: the drops are spread evenly over the streams, and a
window's lag stays about one hop plus its batch's compute.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from avstream.inference.api import EngineFacade
from avstream.inference.session import default_intra_threads, usable_cpus
from avstream.serve.config import BatchingConfig
from avstream.serve.requests import BatchStats, Kind, Request, run_batch, shed, total
from avstream.timebase import MS_PER_S

log = logging.getLogger(__name__)

LANES: tuple[str, ...] = ("encode", "infer")
"""Kinds of request, each batched on its own thread: two graphs may run at once."""
POLL_S = 0.1
"""How often an idle batcher looks at its stop flag."""
ROW_S_WEIGHT = 0.2
"""Weight of the latest batch in a lane's running mean of seconds per request."""


def encode_workers(threads: int) -> int:
    """Frame encodes at once: as many as the cores hold at ``lane_threads(threads)`` each."""
    return max(1, usable_cpus() // lane_threads(threads))


def lane_threads(threads: int) -> int:
    """Intra-op threads per graph for a shared engine: 0 = the machine's default shared by the
    lanes (two graphs may run at once; more threads than cores only slows both)."""
    return threads if threads > 0 else max(1, default_intra_threads() // len(LANES))


class _Lane:
    """One kind of request (frame encodes, or windows) with its own queue and thread: a window
    never waits behind other streams' frame encodes, which are needed only later (they run
    ahead of their windows), exactly as in one stream's own process."""

    def __init__(self, kind: Kind, batcher: Batcher, workers: int) -> None:
        self.kind = kind
        self.batcher = batcher
        self.queue: queue.Queue[Request] = queue.Queue()
        self.stats = BatchStats()
        self._lock = threading.Lock()
        """Guards what the workers share: the counts, the order of service, the mean cost."""
        self._idle = workers
        self._served: dict[int, int] = {}
        """Client -> its requests run so far (a new client starts level with the least
        served): who goes first when not all fit."""
        self._row_s = 0.0
        """Seconds a request of this lane takes to run, on average over recent batches."""
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True,
                                         name=f"avstream-batcher-{kind}-{i}")
                        for i in range(workers)]
        for t in self.threads:
            t.start()

    def _gather(self, first: Request) -> list[Request]:
        """``first`` and every request waiting, and those that come within the wait bound."""
        config = self.batcher.config
        batch = [first]
        deadline = first.t_submit + config.max_wait_ms / MS_PER_S
        while True:
            try:  # what is already waiting joins at once, even past the deadline
                batch.append(self.queue.get_nowait())
                continue
            except queue.Empty:
                pass
            if len(batch) >= config.max_batch or self.batcher.all_present(self.kind, batch):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self.queue.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _loop(self, index: int) -> None:
        stop = self.batcher.stopping
        while not stop.is_set():
            if index > 0 and not self.batcher.no_window_running.wait(POLL_S):
                continue  # an extra worker leaves the cores to a window that is running
            try:
                first = self.queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            gathered = self._gather(first)
            with self._lock:
                batch = self._choose(shed(gathered, self.stats))
                if not batch:
                    continue
                self._idle -= 1
                s = self.stats
                s.batches += 1
                s.requests += len(batch)
                s.largest = max(s.largest, len(batch))
                waited = (time.monotonic() - min(r.t_submit for r in batch)) * MS_PER_S
                s.wait_ms_max = max(s.wait_ms_max, waited)
            t0 = time.perf_counter()
            if self.kind == "infer":
                self.batcher.no_window_running.clear()
            try:
                run_batch(self.batcher.engine, batch)
            finally:
                if self.kind == "infer":
                    self.batcher.no_window_running.set()
            row_s = (time.perf_counter() - t0) / len(batch)
            with self._lock:
                self._idle += 1
                self._row_s = row_s if not self._row_s else (
                    ROW_S_WEIGHT * row_s + (1 - ROW_S_WEIGHT) * self._row_s)

    def _choose(self, waiting: list[Request]) -> list[Request]:
        """At most ``max_batch`` of ``waiting``: the streams served least so far first, then the
        earliest deadline. When more windows are due than the engine can run, the ones left
        out go back to wait and are dropped at their deadline; this order spreads those drops
        evenly over the streams. Those that do not fit wait for the next batch."""
        floor = min(self._served.values(), default=0)
        for r in waiting:
            self._served.setdefault(r.client, floor)
        waiting.sort(key=lambda r: (self._served[r.client], r.deadline or r.t_submit))
        n = self.batcher.config.max_batch
        batch, rest = waiting[:n], waiting[n:]
        # A request that will be past its deadline when this batch ends (and no other worker
        # is free to take it) is dropped now: its stream then brings its next window while this
        # batch runs, in time for the next turn.
        if self._idle <= 1:
            shed(rest, self.stats, time.perf_counter() + self._row_s * len(batch))
        for r in rest:
            if not r.done.is_set():
                self.queue.put(r)
        for r in batch:
            self._served[r.client] += 1
        return batch

    def fail_waiting(self) -> None:
        """After the thread ended: nobody is left to run what is queued; fail it, never hang."""
        while not self.queue.empty():
            req = self.queue.get_nowait()
            req.error = RuntimeError("the batcher closed before this request ran")
            req.done.set()


class Batcher:
    """Runs ``engine`` for every stream: windows on one thread, frame encodes on
    ``encode_workers`` (ONNX Runtime sessions take concurrent runs); ``client()`` per stream.

    Windows run one batch at a time, so that a window's take-up (where its deadline is judged)
    is when its compute starts. Frame encodes, needed only later and one per stream per hop,
    are most of the work of a stream with a camera; with one thread for them a core stayed idle
    while the other ran every stream's encodes in turn (bench/RESULTS.md, the serve profile).
    Encode workers past the first start only while no window runs, as one stream's own
    pipeline starts no encode while its window runs."""

    def __init__(self, engine: Any, config: BatchingConfig, encode_workers: int = 1) -> None:
        self.engine = engine
        self.config = config
        self._lock = threading.Lock()
        self._clients: dict[str, set[int]] = {k: set() for k in LANES}
        """Per lane, the open streams that have used it: a stream without a camera never
        encodes, and the encode lane must not wait for it."""
        self._next_id = 0
        self.stopping = threading.Event()
        self.no_window_running = threading.Event()
        """Set while no window batch runs: extra encode workers start only then."""
        self.no_window_running.set()
        self._lanes: dict[str, _Lane] = {
            "encode": _Lane("encode", self, encode_workers), "infer": _Lane("infer", self, 1)}

    @property
    def stats(self) -> BatchStats:
        """Both lanes together."""
        return total([lane.stats for lane in self._lanes.values()])

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

    def submit(self, cid: int, kind: Kind, *args: Any, deadline: float | None = None) -> Any:
        """Queue one request and wait for its result (its exception is raised here); None when
        it was taken up after ``deadline`` and dropped."""
        if self.stopping.is_set():
            raise RuntimeError("the batcher is closed")
        req = Request(cid, kind, args, deadline=deadline)
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
            for t in lane.threads:
                t.join()
            lane.fail_waiting()


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
        return self.infer_due(waveform, features, None)

    def infer_due(self, waveform: np.ndarray | None, features: np.ndarray | None,
                  deadline: float | None) -> Any | None:
        """``avstream.stream.arrivals.SharedEngine``: the window is dropped (None) when its batch
        starts after ``deadline`` (the pipeline's drop rule, ``Arrivals.deadline``)."""
        if waveform is None and features is None:
            raise ValueError("a window needs audio or frame features")
        return self._batcher.submit(self._cid, "infer", waveform, features, deadline=deadline)

    def close(self) -> None:
        """The stream ended: the batcher no longer waits for it."""
        self._batcher.release(self._cid)
