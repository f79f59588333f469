"""The parts of ``bench/gpu.py``, each run in its own child process (``--part NAME``) so that a
crash or a hang in one (a CUDA library that does not load, a driver fault) is reported and the
others still run.

Every part returns a dict of figures, or raises ``Skipped`` with the reason it cannot measure
on this machine (e.g. an onnxruntime without the CUDA provider). Nothing here is imported by
the parent process: a part's imports (torch, onnxruntime, av, psutil) may be missing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BATCHES: tuple[int, ...] = (1, 8, 32)
WARMUP_RUNS = 3
"""Untimed runs first (CUDA kernels load and autotune, ORT allocates its arena)."""
TIMED_RUNS = 20
DELAY_HOPS = 100
"""Windows timed at live pace: 20 s of stream at the default 0.2-s hop."""
DELAY_WARMUP_HOPS = 10
STREAM_SECONDS = 8.0
"""Length of the recording each stream of the serve ladder plays (short: minutes are scarce)."""
TRAIN_STEPS = 5
TRAIN_WARMUP_STEPS = 2
MS_PER_S = 1000.0
DEADLINE_MARGIN_S = 5.0
"""A part stops starting new measurements this long before its limit, to report what it has."""
MB = 1024.0 * 1024.0
TORCH_MODES: tuple[str, ...] = ("fp32", "fp16-autocast", "bf16-autocast")
ORT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16")


class Skipped(Exception):
    """This part cannot measure here; the message says why (reported, not a failure)."""


def timed(run: Callable[[], object], sync: Callable[[], None], runs: int = TIMED_RUNS,
          warmup: int = WARMUP_RUNS) -> dict[str, float]:
    """Median, p99 and min milliseconds of ``runs`` calls of ``run`` after ``warmup``."""
    for _ in range(warmup):
        run()
    sync()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        sync()
        ms.append((time.perf_counter() - t0) * MS_PER_S)
    return {"p50": round(statistics.median(ms), 4),
            "p99": round(float(np.percentile(ms, 99)), 4), "min": round(min(ms), 4)}


def _ort_provider(device: str) -> str:
    """The provider a GPU figure needs, or Skipped when this onnxruntime lacks it."""
    import onnxruntime as ort

    if device == "cpu":
        return "cpu"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise Skipped(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (a CPU-only "
                      f"build; install the project's .[gpu] extra, onnxruntime-gpu, for these "
                      f"figures)")
    return "cuda"


def _bundle(args: argparse.Namespace) -> Path:
    if args.bundle is None:
        raise Skipped("no bundle (the bundle part did not give one; see its reason)")
    return Path(args.bundle)


def part_bundle(args: argparse.Namespace) -> dict[str, Any]:
    """The bundle every ONNX Runtime part runs: --bundle, or the paper architecture from random
    weights exported as fp32 with fp16 beside it (cached; no training: speed does not depend
    on the weights)."""
    from avstream.bundle.loader import load_bundle

    if args.bundle is not None:
        path, built = Path(args.bundle), False
    else:
        from bench.common import prepare_bundle

        path, built = prepare_bundle(args.config, "fp32", args.cache, extra=("fp16",)), True
    bundle = load_bundle(path)
    return {"bundle": str(path), "built_from_random_weights": built,
            "precisions": list(bundle.precisions()),
            "preset": bundle.manifest.provenance.config.get("preset")}


def part_ort_frames(args: argparse.Namespace) -> dict[str, Any]:
    """Frame encode ms at batch 1/8/32 per shipped precision, ORT CUDA with IO binding."""
    from avstream.bundle import schema
    from avstream.bundle.loader import load_bundle
    from avstream.inference.session import GraphSession, SessionConfig

    provider = _ort_provider(args.device)
    bundle = load_bundle(_bundle(args))
    shipped = bundle.precisions()
    size = bundle.format.frame_size
    rng = np.random.default_rng(0)
    out: dict[str, Any] = args.partial
    out["not_shipped"] = [p for p in ORT_PRECISIONS if p not in shipped]
    for precision in (p for p in ORT_PRECISIONS if p in shipped):
        session = GraphSession(schema.FRAME_GRAPH, shipped[precision][schema.FRAME_GRAPH],
                               SessionConfig(provider=provider, io_binding=provider == "cuda"))
        row: dict[str, Any] = {"providers_run": list(session.providers),
                               "io_binding": session.uses_io_binding}
        out[precision] = row
        for batch in BATCHES:
            frames = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
            ms = timed(lambda f=frames, s=session: s.run({schema.FRAMES: f}), lambda: None)
            row[f"batch_{batch}_ms"] = ms
            row[f"batch_{batch}_ms_per_frame"] = round(ms["p50"] / batch, 4)
    return out


def part_delay(args: argparse.Namespace) -> dict[str, Any]:
    """Label delay of one live-paced stream through the daemon's pipeline (``--precision
    auto``, which is fp16 on CUDA when the bundle ships it)."""
    from avstream.bundle.loader import load_bundle
    from avstream.inference.engine import Engine
    from avstream.inference.session import SessionConfig
    from avstream.stream.windows import DEFAULT_HOP_MS
    from bench.common import percentiles
    from bench.hops import CAMERA_HEIGHT, CAMERA_WIDTH, HopData
    from bench.pipelined import time_pipelined_hops

    engine = Engine(load_bundle(_bundle(args)), SessionConfig(provider=_ort_provider(args.device)))
    data = HopData.make(engine.format.sample_rate, engine.format.channels, DEFAULT_HOP_MS)
    r = time_pipelined_hops(engine, data, DELAY_HOPS, DELAY_WARMUP_HOPS, DEFAULT_HOP_MS,
                            (CAMERA_WIDTH, CAMERA_HEIGHT))
    delay = percentiles(x["delay"] for x in r["latency_ms"] if "delay" in x)
    return {"precision": engine.precision, "providers_run": {k: list(v) for k, v in
                                                             engine.providers.items()},
            "delay_p50_ms": delay["p50"], "delay_p99_ms": delay["p99"], "windows": delay["n"],
            "hops_dropped": r["hops_dropped"], "cpu_s_per_stream_s": r["rtf_cpu"]}


def part_streams(args: argparse.Namespace) -> dict[str, Any]:
    """The most live-paced streams one ``avstream serve`` holds (bench/streams.py's ladder and
    rule, each run ``STREAM_SECONDS`` long), stopped before ``args.deadline``."""
    import tempfile

    from bench.streams import STREAM_COUNTS, expected_windows, trial
    from bench.throughput import recording

    _ort_provider(args.device)  # serve's default providers put CUDA first where it exists
    bundle = _bundle(args)
    media = recording(STREAM_SECONDS / 60.0, args.cache)
    work = Path(tempfile.mkdtemp(prefix="avstream-bench-gpu-"))
    expected = expected_windows(bundle, media, work)
    ns = argparse.Namespace(seconds=STREAM_SECONDS, max_batch_wait_ms=args.max_batch_wait_ms)
    best, trials, stopped = 0, [], None
    for n in (c for c in STREAM_COUNTS if c <= args.max_streams):
        last = trials[-1]["wall_s"] if trials else STREAM_SECONDS * 2
        if time.monotonic() + 2 * last > args.deadline:
            stopped = f"the time limit stopped the ladder before {n} streams"
            break
        t0 = time.monotonic()
        t = trial("batched", bundle, media, n, expected, ns, work)
        trials.append({"streams": n, "held": t.held, "records": t.records, "lag_ms_p99": t.lag_ms_p99,
                       "wall_s": round(time.monotonic() - t0, 1)})
        if not t.held:
            break
        best = n
    return {"most_streams": best, "windows_per_stream": expected, "trials": trials,
            "stopped": stopped, "stream_seconds": STREAM_SECONDS}


def _torch_device(device: str) -> Any:
    import torch

    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise Skipped(f"torch {torch.__version__} sees no CUDA device (a CPU build, or CUDA "
                      f"{torch.version.cuda} does not match the driver)")
    return torch.device("cuda")


def _sync(dev: Any) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def part_train(args: argparse.Namespace) -> dict[str, Any]:
    """The paper preset's fine-tuning step (everything trains, Adam, the recipe's batch) on
    random inputs: examples per second and the peak memory of one step."""
    import torch

    from training.config import preset
    from training.model import AVSceneNet
    from training.train.loop import soft_cross_entropy
    from training.train.options import PAPER_RECIPE

    dev = _torch_device(args.device)
    cfg = preset(args.config)
    batch = PAPER_RECIPE["finetune"].batch_size
    torch.manual_seed(0)
    model = AVSceneNet(cfg).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=PAPER_RECIPE["finetune"].lr)
    wave = (torch.rand(batch, 2, cfg.window_samples, device=dev) * 2 - 1) * 0.1
    frames = torch.randint(0, 256, (batch, cfg.frames_per_window, cfg.frame_size,
                                    cfg.frame_size, 3), dtype=torch.uint8, device=dev)
    target = torch.nn.functional.one_hot(torch.arange(batch, device=dev) % cfg.n_classes,
                                         cfg.n_classes).float()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = sum(soft_cross_entropy(p, target) for p in model(wave, frames, calibrated=False))
        loss.backward()  # type: ignore[union-attr]
        opt.step()

    sync = _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    ms = timed(step, sync, runs=TRAIN_STEPS, warmup=TRAIN_WARMUP_STEPS)
    peak = torch.cuda.max_memory_allocated(dev) / MB if dev.type == "cuda" else None
    return {"preset": cfg.preset, "batch": batch, "step_ms": ms,
            "examples_per_s": round(batch * MS_PER_S / ms["p50"], 2),
            "peak_memory_mb": None if peak is None else round(peak, 1),
            "torch": torch.__version__}


def part_torch_branches(args: argparse.Namespace) -> dict[str, Any]:
    """The three streaming graphs as PyTorch modules (export/graphs.py) on the device: fp32,
    fp16 autocast and bf16 autocast at batch 1/8/32 (a GPU figure without onnxruntime-gpu)."""
    import torch

    from export.graphs import build_graph, example_inputs
    from training.config import preset
    from training.model import AVSceneNet

    dev = _torch_device(args.device)
    cfg = preset(args.config)
    torch.manual_seed(0)
    model = AVSceneNet(cfg).eval()
    sync = _sync(dev)
    dtypes = {"fp16-autocast": torch.float16, "bf16-autocast": torch.bfloat16}
    out: dict[str, Any] = args.partial  # filled as it goes: a partial result at the limit
    out.update({"torch": torch.__version__, "preset": cfg.preset})
    gen = torch.Generator().manual_seed(0)
    for name in ("frame", "audio", "head"):
        graph = build_graph(name, model).to(dev)
        for mode in TORCH_MODES:
            row: dict[str, Any] = {}
            out[f"{name}_{mode}"] = row
            for batch in BATCHES:
                if time.monotonic() > args.deadline - DEADLINE_MARGIN_S:
                    row[f"batch_{batch}_ms"] = {"not_run": "the part's time limit"}
                    continue
                inputs = tuple(x.to(dev) for x in example_inputs(name, cfg, batch, gen))

                def run(xs: tuple[Any, ...] = inputs, m: str = mode,
                        g: torch.nn.Module = graph) -> None:
                    with torch.inference_mode(), torch.autocast(
                            dev.type, dtype=dtypes.get(m, torch.float32), enabled=m in dtypes):
                        g(*xs)
                try:
                    row[f"batch_{batch}_ms"] = timed(run, sync, runs=args.torch_runs)
                except Exception as e:  # one mode the device lacks (bf16 on old GPUs) is a row
                    row[f"batch_{batch}_ms"] = {"failed": f"{type(e).__name__}: {e}"[:300]}
    return out


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "bundle": part_bundle,
    "ort_frames": part_ort_frames,
    "delay": part_delay,
    "streams": part_streams,
    "train": part_train,
    "torch_branches": part_torch_branches,
}
