"""The three streaming graphs as nn.Modules around AVSceneNet's pieces, with their IO contract.

Each wrapper's forward is exactly one AVSceneNet method, so the ONNX graphs compute what
``AVSceneNet.forward`` computes (it is literally their composition). The tensor specs derived
here from the ModelConfig are the single source of the shapes written into the manifest.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from avstream.bundle import schema
from avstream.bundle.manifest import TensorSpec
from training.config import ModelConfig
from training.model import AVSceneNet

AUDIO_CHANNELS = 2
"""The audio graph takes stereo; the daemon duplicates mono (the front end would do the same)."""
RGB_CHANNELS = 3


class AudioGraph(nn.Module):
    """waveform (B, 2, window_samples) float32 -> (audio_probs (B, K), audio_steps (B, 5, A))."""

    def __init__(self, model: AVSceneNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.audio(waveform)


class FrameGraph(nn.Module):
    """frames (B, H, W, 3) uint8 RGB -> frame_features (B, F); normalisation inside."""

    def __init__(self, model: AVSceneNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frames(frames)


class HeadGraph(nn.Module):
    """(frame_features (B, 5, F), audio_steps, audio_probs) -> (visual, early, final) probs."""

    def __init__(self, model: AVSceneNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame_features: torch.Tensor, audio_steps: torch.Tensor,
                audio_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.head(frame_features, audio_steps, audio_probs)


WRAPPERS: dict[str, Callable[[AVSceneNet], nn.Module]] = {
    schema.AUDIO_GRAPH: AudioGraph,
    schema.FRAME_GRAPH: FrameGraph,
    schema.HEAD_GRAPH: HeadGraph,
}


def build_graph(name: str, model: AVSceneNet) -> nn.Module:
    """The wrapper for one graph, in eval mode (dropout off, BN running statistics)."""
    return WRAPPERS[name](model).eval()


def tensor_specs(name: str, cfg: ModelConfig) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """(inputs, outputs) of graph ``name`` for this config, in schema.GRAPH_IO order."""
    b = schema.BATCH_AXIS
    k = cfg.n_classes
    t = cfg.frames_per_window
    shapes: dict[str, tuple[tuple[int | str, ...], str]] = {
        schema.WAVEFORM: ((b, AUDIO_CHANNELS, cfg.window_samples), "float32"),
        schema.AUDIO_PROBS: ((b, k), "float32"),
        schema.AUDIO_STEPS: ((b, t, cfg.audio_feature_dim), "float32"),
        schema.FRAMES: ((b, cfg.frame_size, cfg.frame_size, RGB_CHANNELS), "uint8"),
        schema.VISUAL_PROBS: ((b, k), "float32"),
        schema.EARLY_PROBS: ((b, k), "float32"),
        schema.FINAL_PROBS: ((b, k), "float32"),
    }
    in_names, out_names = schema.GRAPH_IO[name]
    # frame_features is (B, F) out of the frame graph but (B, 5, F) into the head.
    ff_out = TensorSpec(schema.FRAME_FEATURES, (b, cfg.frame_feature_dim), "float32")
    ff_in = TensorSpec(schema.FRAME_FEATURES, (b, t, cfg.frame_feature_dim), "float32")

    def spec(n: str, is_input: bool) -> TensorSpec:
        if n == schema.FRAME_FEATURES:
            return ff_in if is_input else ff_out
        shape, dtype = shapes[n]
        return TensorSpec(n, shape, dtype)

    return tuple(spec(n, True) for n in in_names), tuple(spec(n, False) for n in out_names)


def example_inputs(name: str, cfg: ModelConfig, batch: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Random inputs of the graph's shapes: waveforms in [-1, 1], frames as uint8, probs summing
    to 1. Used as export examples (batch >= 2, or the exporter freezes the batch axis)."""
    inputs, _ = tensor_specs(name, cfg)
    out: list[torch.Tensor] = []
    for spec in inputs:
        shape = (batch, *(int(d) for d in spec.shape[1:]))
        if spec.dtype == "uint8":
            out.append(torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator))
        elif spec.name == schema.WAVEFORM:
            out.append(torch.rand(shape, generator=generator) * 2 - 1)
        elif spec.name == schema.AUDIO_PROBS:
            out.append(torch.softmax(torch.randn(shape, generator=generator), dim=-1))
        else:
            out.append(torch.randn(shape, generator=generator))
    return tuple(out)
