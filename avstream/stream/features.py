"""Frame features for windows: each frame encoded once, ahead of time when pipelined.

A frame chosen for a slot is known as soon as it arrives (a frame exactly on the slot time) or
when the next frame arrives (the nearest one can then be told); the window that needs it is
complete only when its last audio sample arrives, up to a window later. ``FrameFeatures``
takes each frame as soon as it is known (``submit``) and, when pipelined, encodes it in one
background thread through a bounded queue, so that when a window is complete its features are
usually ready and only the audio graph and the head remain on its critical path.

Every frame is encoded alone (a batch of one): the features, and so every output, are then the
same bit for bit whether a frame was encoded ahead of time or on its window's turn.

Every run of the frame graph is counted here (``counts()``: ``FrameCounts``), including frames
encoded ahead for a window that is then dropped or never comes: the summary's ``frame_encodes``.
A line's ``frames_encoded`` is another figure, the frames the windows that ran used (the reporter
counts it), so that lines depend on the stream alone and not on the encoder thread's timing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from avstream.inference.api import EngineLike
from avstream.stream.buffers import FrameRef

log = logging.getLogger(__name__)

QUEUE_FRAMES = 16
"""Frames waiting for the background encoder; beyond this a frame is encoded on its window's
turn instead (the encoder is behind: 16 frames are 3.2 s of slots at 5 fps)."""
_STOP = None


@dataclass(frozen=True, slots=True)
class FrameCounts:
    encoded: int = 0
    """Frames run through the frame graph (in the background and on a window's turn)."""
    encoded_ahead: int = 0
    """Of those, frames encoded in the background before their window asked."""


class FrameFeatures:
    """The per-frame feature cache (by ``FrameRef.seq``) and its optional encoder thread."""

    def __init__(self, engine: EngineLike, pipelined: bool, queue_frames: int = QUEUE_FRAMES) -> None:
        self.engine = engine
        self.pipelined = pipelined
        self._lock = threading.Condition()
        self._cache: dict[int, np.ndarray] = {}
        self._queued: set[int] = set()
        self._queue: queue.Queue[FrameRef | None] = queue.Queue(maxsize=queue_frames)
        self._thread: threading.Thread | None = None
        self._holding = False
        self.reset()

    def reset(self) -> None:
        """Forget every feature; frames still queued are dropped."""
        with self._lock:
            self._cache.clear()
            self._queued.clear()
            self._drain_queue()
            self._encoded = 0
            self._encoded_ahead = 0
            self._floor = -1
            self._error: BaseException | None = None

    def counts(self) -> FrameCounts:
        """Runs of the frame graph so far (``settle()`` first for the final figure)."""
        with self._lock:
            return FrameCounts(encoded=self._encoded, encoded_ahead=self._encoded_ahead)

    def _drain_queue(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    # ------------------------------------------------------------------ ahead of time

    def submit(self, frames: Iterable[FrameRef]) -> None:
        """Frames now known to fill a slot: encode them in the background (when pipelined)."""
        if not self.pipelined:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="frame-encoder", daemon=True)
            self._thread.start()
        for ref in frames:
            with self._lock:
                if ref.seq in self._cache or ref.seq in self._queued or ref.seq < self._floor:
                    continue
                self._queued.add(ref.seq)
            try:
                self._queue.put_nowait(ref)
            except queue.Full:
                with self._lock:
                    self._queued.discard(ref.seq)
                log.debug("frame encoder queue full: frame %d waits for its window", ref.seq)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """No new encode starts inside this block: the window's own graphs run alone."""
        with self._lock:
            self._holding = True
        try:
            yield
        finally:
            with self._lock:
                self._holding = False
                self._lock.notify_all()

    def _work(self) -> None:
        while (ref := self._queue.get()) is not _STOP:
            with self._lock:
                while self._holding:
                    self._lock.wait()
                if ref.seq < self._floor:  # its windows are gone (run or dropped): skip it
                    self._queued.discard(ref.seq)
                    self._lock.notify_all()
                    continue
            try:
                row = self.engine.encode_frames(ref.image[None])[0]
            except BaseException as e:  # handed to the window that needs the frame
                row, error = None, e
            else:
                error = None
            with self._lock:
                if ref.seq in self._queued:  # not reset meanwhile
                    self._queued.discard(ref.seq)
                    if row is not None and ref.seq >= self._floor:
                        self._cache[ref.seq] = row
                        self._encoded += 1
                        self._encoded_ahead += 1
                    self._error = self._error or error
                self._lock.notify_all()

    def close(self) -> None:
        """Stop the encoder thread (after what it is encoding now)."""
        if self._thread is not None:
            self._drain_queue()
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    # ------------------------------------------------------------------ on the window's turn

    def window(self, frames: Sequence[FrameRef]) -> tuple[np.ndarray, float]:
        """(F, D) features of a window's frames and the ms spent waiting for or encoding them.
        Features older than this window's first frame are let go (frames arrive in order)."""
        t0 = time.perf_counter()
        rows: list[np.ndarray] = []
        for ref in frames:
            with self._lock:
                while ref.seq in self._queued and self._error is None:
                    self._lock.wait()
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                row = self._cache.get(ref.seq)
            if row is None:
                row = self.engine.encode_frames(ref.image[None])[0]
                with self._lock:
                    self._cache[ref.seq] = row
                    self._encoded += 1
            rows.append(row)
        self.forget_before(min(f.seq for f in frames))
        return np.stack(rows), (time.perf_counter() - t0) * 1e3

    def forget_before(self, seq: int) -> None:
        """Frames before ``seq`` will not be asked for again: let their features go, and do not
        encode them if they are still queued (a window dropped under load sheds its encodes)."""
        with self._lock:
            self._floor = max(self._floor, seq)
            for k in [k for k in self._cache if k < seq]:
                del self._cache[k]

    def settle(self) -> None:
        """Wait until nothing is queued (end of a run: the counts no longer move)."""
        with self._lock:
            while self._queued and self._error is None:
                self._lock.wait()
