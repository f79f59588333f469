"""The cross-stream batcher on the real (tiny) engine: rows equal to the engine's own results,
requests of different streams in one batch, the wait bound, and errors handed to the caller."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from avstream.serve.batcher import Batcher
from avstream.serve.config import BatchingConfig

WAIT_MS = 500.0
"""Long next to one tiny-model window even on a loaded machine (tens of ms)."""
TOLERANCE = 1e-5


def window(fmt: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    wave = rng.uniform(-0.5, 0.5, (fmt.channels, fmt.window_samples)).astype(np.float32)
    feats = rng.normal(0, 1, (fmt.frames_per_window, fmt.feature_dim)).astype(np.float32)
    return wave, feats


def test_streams_that_ask_together_share_a_batch_with_the_engine_s_results(tiny_engine: Any) -> None:
    fmt = tiny_engine.format
    batcher = Batcher(tiny_engine, BatchingConfig(max_batch=8, max_wait_ms=1000.0))
    clients = [batcher.client() for _ in range(3)]
    inputs = [window(fmt, i) for i in range(3)]
    images = np.random.default_rng(9).integers(0, 255, (3, 2, fmt.frame_size, fmt.frame_size, 3),
                                              dtype=np.uint8)
    got: dict[int, Any] = {}

    def ask(i: int) -> None:
        got[i] = (clients[i].infer(*inputs[i]), clients[i].encode_frames(images[i]))

    def round_of_requests() -> float:
        t0 = time.monotonic()
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return time.monotonic() - t0

    try:
        round_of_requests()  # each stream uses both lanes once: from now on each is waited for
        # Every stream had a request waiting: the batches ran without waiting out the 1-s bound.
        assert round_of_requests() < 1.0
        assert batcher.stats.largest == 3
        for i in range(3):
            want = tiny_engine.infer(*inputs[i])
            result, features = got[i]
            assert result.branch == want.branch == "final"
            np.testing.assert_allclose(result.probs, want.probs, atol=TOLERANCE)
            np.testing.assert_allclose(features, tiny_engine.encode_frames(images[i]),
                                       atol=TOLERANCE)
    finally:
        batcher.close()


def test_a_request_waits_at_most_the_bound_for_a_silent_stream(tiny_engine: Any) -> None:
    """A stream that has used the lane is waited for (up to the bound); one that ended, or one
    that never uses the lane (no camera: no encodes), is not."""
    batcher = Batcher(tiny_engine, BatchingConfig(max_batch=8, max_wait_ms=WAIT_MS))
    talker, silent = batcher.client(), batcher.client()
    wave, feats = window(tiny_engine.format, 1)
    try:
        talker.infer(wave, feats)  # warm-up; each stream has now used the lane once
        silent.infer(wave, feats)
        t0 = time.monotonic()
        talker.infer(wave, None)
        waited = (time.monotonic() - t0) * 1e3
        assert WAIT_MS * 0.8 <= waited < WAIT_MS * 3, waited
        silent.close()  # the silent stream ended: nobody is waited for any more
        t0 = time.monotonic()
        talker.infer(wave, None)
        assert (time.monotonic() - t0) * 1e3 < WAIT_MS * 0.8
        batcher.client()  # a stream that has not asked for anything yet is not waited for
        t0 = time.monotonic()
        talker.infer(wave, None)
        assert (time.monotonic() - t0) * 1e3 < WAIT_MS * 0.8
    finally:
        batcher.close()


def test_an_engine_error_reaches_the_stream_that_asked_and_the_batcher_goes_on(
        tiny_engine: Any) -> None:
    batcher = Batcher(tiny_engine, BatchingConfig(max_wait_ms=0.0))
    client = batcher.client()
    wave, feats = window(tiny_engine.format, 2)
    try:
        with pytest.raises(ValueError, match="expected"):
            client.infer(wave[:, :100], None)
        with pytest.raises(ValueError, match="a window needs"):
            client.infer(None, None)
        assert client.infer(wave, feats).branch == "final"
    finally:
        batcher.close()
