"""How fast each graph of each precision runs on the exporting machine, for ``--precision auto``.

A reduced precision is not faster everywhere: on one 2-core x86 CPU the paper model's int8
frame encoder ran 2.4x faster than fp32 while its int8 audio graph ran 1.6x slower (its fp32
front end and the QDQ pairs around it cost more than the int8 convolutions save). So the export
times every graph of every precision it ships, as a live hop runs them (one window, one new
frame), and records the medians in the manifest; ``auto`` then picks per graph
(avstream/inference/precision.py).

The precisions are timed in turns within each round, so a slow spell of a shared machine
falls on all of them alike rather than on whichever ran during it.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from avstream.bundle.manifest import Timings
from avstream.inference.machine import cpu_model
from avstream.inference.session import CPU, GraphSession, SessionConfig, default_intra_threads

log = logging.getLogger(__name__)

TIMED_RUNS = 7
"""Timed runs per graph and precision: the median of 7 shrugs off two slow runs."""
WARMUP_RUNS = 2
"""Untimed runs first: ORT allocates its arena and picks kernels on the first run."""
TIMING_BATCH = 1
"""One window or one frame per run, as a live hop runs them."""
TIMING_SEED = 0
MS_PER_S = 1000.0


def _feeds(session: GraphSession, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs of the graph's own dtypes and shapes, the batch axis set to TIMING_BATCH."""
    feeds = {}
    for name, dtype in session.input_types.items():
        shape = [d if isinstance(d, int) else TIMING_BATCH for d in session.input_shapes[name]]
        if np.issubdtype(dtype, np.integer):
            feeds[name] = rng.integers(0, 256, shape).astype(dtype)
        else:  # a quiet signal's level: the audio front end's dB and scaling see real-like input
            feeds[name] = (rng.standard_normal(shape) * 0.1).astype(dtype)
    return feeds


def time_graphs(graphs: Mapping[str, Mapping[str, Path]], runs: int = TIMED_RUNS,
                warmup: int = WARMUP_RUNS, threads: int = 0) -> Timings:
    """``graphs``: precision -> graph name -> ONNX file. Median ms of each on ORT's CPU provider."""
    config = SessionConfig(provider="cpu", intra_threads=threads)
    rng = np.random.default_rng(TIMING_SEED)
    sessions = {(p, g): GraphSession(g, path, config)
                for p, by_graph in graphs.items() for g, path in by_graph.items()}
    feeds = {key: _feeds(s, rng) for key, s in sessions.items()}
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in sessions}
    for i in range(warmup + runs):
        for key, session in sessions.items():
            t0 = time.perf_counter()
            session.run(feeds[key])
            if i >= warmup:
                samples[key].append((time.perf_counter() - t0) * MS_PER_S)
    median_ms: dict[str, dict[str, float]] = {}
    for (precision, graph), ms in samples.items():
        median_ms.setdefault(graph, {})[precision] = round(statistics.median(ms), 4)
    log.info("graph timings (median ms of %d runs): %s", runs, median_ms)
    return Timings(provider=CPU, cpu=cpu_model(), threads=threads or default_intra_threads(),
                   batch=TIMING_BATCH, runs=runs, median_ms=median_ms)
