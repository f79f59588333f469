"""The same hop in PyTorch eager, the loop a user would write (used by ``bench/latency.py``)."""

from __future__ import annotations

import time
from typing import Any

from avstream.media.frames import resize_frame
from avstream.stream.windows import DEFAULT_HOP_MS, MS_PER_S
from bench.common import MODEL_SEED, percentiles
from bench.hops import GRAPH_STAGES, HopData


def time_torch_eager(config: dict[str, Any], threads: int, iters: int, warmup: int,
                     hop_ms: int = DEFAULT_HOP_MS) -> dict[str, Any]:
    """The same hops in PyTorch eager: new frame encoded, four cached features, audio, head."""
    import torch

    from training.config import ModelConfig
    from training.model import AVSceneNet

    cfg = ModelConfig.from_dict(config)
    torch.set_num_threads(threads)
    torch.manual_seed(MODEL_SEED)
    model = AVSceneNet(cfg).eval()
    data = HopData.make(cfg.sample_rate, 2, hop_ms)
    window_blocks = round(MS_PER_S / hop_ms)
    fpw = cfg.frames_per_window
    out: dict[str, list[float]] = {k: [] for k in (*GRAPH_STAGES, "graphs")}
    cache: list[torch.Tensor] = []
    with torch.inference_mode():
        for i in range(window_blocks - 1, window_blocks + warmup + iters):
            wave = torch.from_numpy(data.window_wave(i, window_blocks)).unsqueeze(0)
            new = torch.from_numpy(resize_frame(data.frame(i), cfg.frame_size)).unsqueeze(0)
            t0 = time.perf_counter()
            cache.append(model.encode_frames(new)[0])
            del cache[:-fpw]
            feats = torch.stack(cache if len(cache) == fpw else [cache[0]] * (fpw - len(cache))
                                + cache).unsqueeze(0)
            t1 = time.perf_counter()
            audio_probs, audio_steps = model.audio(wave)
            t2 = time.perf_counter()
            _visual, _early, final = model.head(feats, audio_steps, audio_probs)
            float(final[0, 0])  # the result is used, as a user's loop would
            t3 = time.perf_counter()
            if i < window_blocks + warmup:
                continue
            for k, a, b in (("frame", t0, t1), ("audio", t1, t2), ("head", t2, t3)):
                out[k].append((b - a) * 1e3)
            out["graphs"].append((t3 - t0) * 1e3)
    return {
        "torch": torch.__version__, "intra_threads": torch.get_num_threads(),
        "stages_ms": {k: percentiles(v) for k, v in out.items()},
        "hop_samples_ms": [round(x, 3) for x in out["graphs"]],
    }
