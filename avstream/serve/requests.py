"""What passes between a stream's stand-in engine and the engine it shares: one request (a frame
encode or a window) waiting for its result, the running of a gathered batch, and the shedding
of windows taken up after their deadline. Used by the local batcher and by Ray Serve's
deployment alike."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["encode", "infer"]


@dataclass(eq=False)
class Request:
    """One call of a stream's engine, waiting for (then holding) its result."""

    client: int
    kind: Kind
    args: tuple[Any, ...]
    t_submit: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    """``perf_counter`` time after which a window is dropped instead of run (None: never)."""
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
    dropped: int = 0
    """Windows taken up after their deadline and dropped, not run (each stream counts its own
    as ``hops_dropped``)."""

    def mean_size(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


def total(parts: Sequence[BatchStats]) -> BatchStats:
    """Several lanes or replicas together."""
    return BatchStats(batches=sum(s.batches for s in parts),
                      requests=sum(s.requests for s in parts),
                      largest=max((s.largest for s in parts), default=0),
                      wait_ms_max=max((s.wait_ms_max for s in parts), default=0.0),
                      dropped=sum(s.dropped for s in parts))


def shed(batch: list[Request], stats: BatchStats, now: float | None = None) -> list[Request]:
    """The requests of ``batch`` still due at ``now`` (default: now); the others are answered
    None (dropped) at once: the engine's time goes to windows that can still be on time."""
    now = time.perf_counter() if now is None else now
    late = [r for r in batch if r.deadline is not None and now > r.deadline]
    if late:
        _settle(late, None, None)
        stats.dropped += len(late)
    return [r for r in batch if r.deadline is None or now <= r.deadline]


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
