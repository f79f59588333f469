"""The three streaming graphs as nn.Modules around AVSceneNet's pieces, with their IO contract.

Each wrapper's forward is exactly one AVSceneNet method, so the ONNX graphs compute what
``AVSceneNet.forward`` computes (it is literally their composition), including the checkpoint's
temperature scaling: the audio graph's ``audio_probs`` and the head graph's three outputs are
calibrated probabilities, and the daemon needs no code of its own for it. The tensor specs derived
here from the ModelConfig are the single source of the shapes written into the manifest.
"""

from __future__ import annotations

import copy
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


class _Graph(nn.Module):
    def __init__(self, model: AVSceneNet) -> None:
        super().__init__()
        self.model = model

    @staticmethod
    def _out(x: torch.Tensor) -> torch.Tensor:
        """Graph outputs are float32 whatever the precision inside (the manifest's contract)."""
        return x.float()


class AudioGraph(_Graph):
    """waveform (B, 2, window_samples) float32 -> (audio_probs (B, K), audio_steps (B, 5, A));
    audio_probs calibrated."""

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs, steps = self.model.audio_graph(waveform)
        return self._out(probs), self._out(steps)


class FrameGraph(_Graph):
    """frames (B, H, W, 3) uint8 RGB -> frame_features (B, F); normalisation inside."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self._out(self.model.encode_frames(frames))


class HeadGraph(_Graph):
    """(frame_features (B, 5, F), audio_steps, calibrated audio_probs) -> calibrated (visual,
    early, final) probs."""

    def forward(self, frame_features: torch.Tensor, audio_steps: torch.Tensor,
                audio_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        visual, early, final = self.model.head_graph(frame_features, audio_steps, audio_probs)
        return self._out(visual), self._out(early), self._out(final)


class Fp32Island(nn.Module):
    """Runs a sub-module in fp32 inside a half-precision model and hands fp16 on.

    Used for the audio front end (|STFT|^2 overflows fp16; the dB range needs fp32) and the
    pixel normaliser (uint8 in, so its output is where fp16 starts).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x).half()


def half_precision_model(model: AVSceneNet) -> AVSceneNet:
    """A copy in fp16 except the audio front end and the pixel normaliser (kept fp32).

    Exported through the same wrappers, it gives fp16 graphs whose fp32 parts are fp32 by
    construction (weights, inputs and intermediates), with float32 inputs and outputs.
    """
    half = copy.deepcopy(model).half().eval()
    half.audio.frontend = Fp32Island(copy.deepcopy(model.audio.frontend).float())
    half.visual.encoder.normalize = Fp32Island(copy.deepcopy(model.visual.encoder.normalize).float())
    return half


WRAPPERS: dict[str, Callable[[AVSceneNet], nn.Module]] = {
    schema.AUDIO_GRAPH: AudioGraph,
    schema.FRAME_GRAPH: FrameGraph,
    schema.HEAD_GRAPH: HeadGraph,
}


FP16_GRAPHS: tuple[str, ...] = (schema.AUDIO_GRAPH, schema.FRAME_GRAPH)
"""The head stays fp32: its inputs are float32 graph inputs and it is <1% of the compute."""


def build_graph(name: str, model: AVSceneNet, precision: str = "fp32") -> nn.Module:
    """The wrapper for one graph, in eval mode (dropout off, BN running statistics)."""
    if precision == "fp16":
        if name not in FP16_GRAPHS:
            raise ValueError(f"graph {name!r} has no fp16 form; expected one of {FP16_GRAPHS}")
        model = half_precision_model(model)
    elif precision != "fp32":
        raise ValueError(f"precision {precision!r}; expected 'fp32' or 'fp16'")
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
