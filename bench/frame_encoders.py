"""Frame encode time of one 224x224 frame: EfficientNet-Lite0 (the lite preset) against VGG16
(the paper), each as an fp32 and a static int8 (QDQ) ONNX graph, measured side by side.

    python -m bench.frame_encoders [--iters 40] [--rounds 3] [--threads 2] [--json OUT]

Each graph is exported by export.onnx_export (the bundle's frame graph, normaliser inside) and
quantized by export.quantize with the bundle's settings, calibrated on frames of a synthetic
recording. Rounds alternate the four graphs so a slow spell of the machine hits all of them.
VGG16 runs with random weights: the time of a dense conv stack does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import percentiles

FRAME_SIZE = 224
CALIBRATION_FRAMES = 16
CALIBRATION_BATCH = 4
WARMUP = 3


def _frames(n: int, seed: int = 5) -> np.ndarray:
    """(n, 224, 224, 3) uint8 frames of a synthetic recording (calibration and timing input)."""
    from avstream.media.decode import decode_video_frames
    from training.synth.stream import write_synthetic_stream

    with tempfile.TemporaryDirectory() as tmp:
        mp4 = Path(tmp) / "frames.mp4"
        write_synthetic_stream(mp4, ["park", "metro", "airport"], seconds_per_scene=2.0, seed=seed)
        frames = decode_video_frames(mp4, FRAME_SIZE).frames
    return np.ascontiguousarray(frames[np.linspace(0, len(frames) - 1, n).astype(int)])


def build_graphs(work: Path, frames: np.ndarray) -> dict[str, Path]:
    """lite/vgg16 x fp32/int8 frame graphs in ``work``."""
    import torch

    from avstream.bundle import schema
    from export.onnx_export import export_graph
    from export.quantize import ArrayReader, quantize_int8
    from training.config import LITE, PAPER
    from training.model import AVSceneNet
    from training.weights.efficientnet_lite0 import load_into

    torch.manual_seed(0)
    lite = AVSceneNet(LITE).eval()
    load_into(lite.visual.encoder.backbone)
    vgg = AVSceneNet(PAPER).eval()
    batches = [frames[i:i + CALIBRATION_BATCH] for i in range(0, len(frames), CALIBRATION_BATCH)]
    out: dict[str, Path] = {}
    for name, model in (("lite", lite), ("vgg16", vgg)):
        fp32 = work / f"{name}.fp32.onnx"
        export_graph(schema.FRAME_GRAPH, model, fp32)
        int8 = work / f"{name}.int8.onnx"
        quantize_int8(fp32, int8, ArrayReader(schema.FRAMES, batches), exclude_nodes=[])
        out[f"{name} fp32"], out[f"{name} int8"] = fp32, int8
    return out


def time_graphs(graphs: dict[str, Path], frames: np.ndarray, threads: int, iters: int,
                rounds: int) -> dict[str, dict[str, float]]:
    from avstream.bundle import schema
    from export.onnx_export import cpu_session

    sessions = {k: cpu_session(p, threads) for k, p in graphs.items()}
    times: dict[str, list[float]] = {k: [] for k in graphs}
    for _ in range(rounds):
        for key, session in sessions.items():
            for i in range(WARMUP + iters):
                frame = frames[i % len(frames)][None]
                t0 = time.perf_counter()
                session.run(None, {schema.FRAMES: frame})
                if i >= WARMUP:
                    times[key].append((time.perf_counter() - t0) * 1e3)
    return {k: percentiles(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=40, help="timed frames per graph per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    frames = _frames(CALIBRATION_FRAMES)
    with tempfile.TemporaryDirectory() as tmp:
        graphs = build_graphs(Path(tmp), frames)
        result = time_graphs(graphs, frames, args.threads, args.iters, args.rounds)
    print(f"frame encode ms, one {FRAME_SIZE}x{FRAME_SIZE} frame, {args.threads} threads, "
          f"{args.rounds} x {args.iters} frames each:")
    for key, p in result.items():
        print(f"  {key:11s} " + "  ".join(f"{k} {p[k]:7.1f}" for k in ("p50", "p99", "mean")))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
