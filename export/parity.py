"""Proof that a bundle computes what PyTorch computes: the same windows through both.

The ONNX side is the daemon's own ``avstream.inference.engine.Engine`` (its ``encode_frames``
and ``outputs``, the calls behind every hop), on ONNX Runtime's CPU provider, so what is proved
is the composition the daemon runs, not a copy of it. The torch side is the checkpoint's
AVSceneNet.forward.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from avstream.bundle.loader import Bundle, load_bundle, sha256_file
from avstream.inference.engine import OUTPUTS, Engine
from avstream.inference.session import SessionConfig
from training.checkpoint import load_checkpoint
from training.config import ModelConfig
from training.model import AVSceneNet

log = logging.getLogger(__name__)

FP32_PROB_ATOL = 1e-4
"""Largest |p_onnx - p_torch| accepted for the fp32 variant, on every output."""
PARITY_BATCH = 8
Window = Sequence[Any]
"""(wave (2, T) float32, frames (5, H, W, 3) uint8[, label int, ...]): a CropDataset item."""


@dataclass(frozen=True)
class OutputParity:
    name: str
    max_abs_diff: float
    label_agreement: float
    """Fraction of windows whose argmax is the same in ONNX Runtime and torch."""
    disagreements: int
    min_torch_margin: float
    """Smallest gap between torch's top two probabilities: a disagreement on a window whose
    margin is below the tolerance is a near-tie, not a wrong graph."""


@dataclass(frozen=True)
class Comparison:
    outputs: Mapping[str, OutputParity]
    windows: int
    labelled_windows: int
    accuracy_torch: float | None
    accuracy_bundle: float | None


@dataclass(frozen=True)
class ParityReport:
    bundle: Path
    checkpoint: Path
    variant: str
    windows: int
    outputs: Mapping[str, OutputParity]
    checkpoint_matches: bool
    """The bundle's provenance names this checkpoint's sha256."""
    labelled_windows: int
    accuracy_torch: float | None
    """Final-output accuracy of torch on the labelled windows (None without labels)."""
    accuracy_bundle: float | None

    @property
    def max_abs_diff(self) -> float:
        return max(o.max_abs_diff for o in self.outputs.values())

    @property
    def label_agreement(self) -> float:
        """Top-label agreement of the final (late-fusion) output."""
        return self.outputs["final"].label_agreement

    @property
    def accuracy_change(self) -> float | None:
        if self.accuracy_torch is None or self.accuracy_bundle is None:
            return None
        return self.accuracy_bundle - self.accuracy_torch

    def passes(self, atol: float = FP32_PROB_ATOL) -> bool:
        """Every output within atol and the same top label on every window."""
        return all(o.max_abs_diff <= atol and o.disagreements == 0 for o in self.outputs.values())

    def summary(self) -> str:
        parts = [f"{n}: max|diff| {o.max_abs_diff:.2e}, agreement {o.label_agreement:.4f}"
                 for n, o in self.outputs.items()]
        acc = ""
        if self.accuracy_torch is not None and self.accuracy_bundle is not None:
            acc = (f"; accuracy torch {self.accuracy_torch:.4f}, bundle {self.accuracy_bundle:.4f}"
                   f" ({self.labelled_windows} labelled windows)")
        return f"{self.variant} bundle vs torch on {self.windows} windows: " + "; ".join(parts) + acc


class BundleRunner:
    """The daemon's engine on a bundle, at one of its precisions, on ORT CPU."""

    def __init__(self, bundle: Bundle, threads: int = 0, precision: str | None = None) -> None:
        self.bundle = bundle
        self.engine = Engine(bundle, SessionConfig(provider="cpu", intra_threads=threads),
                             precision or bundle.variant)

    @property
    def sessions(self) -> dict[str, Any]:
        """Graph name -> the engine's onnxruntime InferenceSession."""
        return {name: g.session for name, g in self.engine.sessions.items()}

    def run(self, waves: np.ndarray, frames: np.ndarray) -> dict[str, np.ndarray]:
        """waves (B, 2, T) float32, frames (B, 5, H, W, 3) uint8 -> BranchOutputs-named probs."""
        b, t = frames.shape[:2]
        features = self.engine.encode_frames(frames.reshape(b * t, *frames.shape[2:]))
        out, _ = self.engine.outputs(waves, features.reshape(b, t, -1))
        return out


def random_windows(cfg: ModelConfig, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Noise waveforms at random levels (-40..-6 dBFS-ish) and random uint8 frames."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        gain = 10 ** rng.uniform(-2.0, -0.3)
        wave = np.clip(rng.standard_normal((2, cfg.window_samples)) * gain, -1, 1).astype(np.float32)
        frames = rng.integers(0, 256, (cfg.frames_per_window, cfg.frame_size, cfg.frame_size, 3),
                              dtype=np.uint8)
        out.append((wave, frames))
    return out


def _label(window: Window) -> int | None:
    if len(window) < 3 or window[2] is None:
        return None
    return int(np.asarray(window[2]))


def _batches(windows: Iterable[Window], size: int) -> Iterator[tuple[np.ndarray, np.ndarray, list[int | None]]]:
    chunk: list[Window] = []
    for w in windows:
        chunk.append(w)
        if len(chunk) == size:
            yield _stack(chunk)
            chunk = []
    if chunk:
        yield _stack(chunk)


def _stack(chunk: list[Window]) -> tuple[np.ndarray, np.ndarray, list[int | None]]:
    waves = np.stack([np.asarray(w[0], dtype=np.float32) for w in chunk])
    frames = np.stack([np.asarray(w[1], dtype=np.uint8) for w in chunk])
    return waves, frames, [_label(w) for w in chunk]


def _margin(p: np.ndarray) -> np.ndarray:
    top2 = np.sort(p, axis=-1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def compare(runner: BundleRunner, model: AVSceneNet, windows: Iterable[Window],
            batch_size: int = PARITY_BATCH) -> Comparison:
    """Every window through both; argmax agreement and max |diff| per output."""
    model.eval()
    diffs = {k: 0.0 for k in OUTPUTS}
    agree = {k: 0 for k in OUTPUTS}
    margins = {k: np.inf for k in OUTPUTS}
    n = labelled = correct_torch = correct_bundle = 0
    for waves, frames, labels in _batches(windows, batch_size):
        with torch.no_grad():
            ref = model(torch.from_numpy(waves), torch.from_numpy(frames))
        got = runner.run(waves, frames)
        for key in OUTPUTS:
            r = getattr(ref, key).numpy().astype(np.float64)
            g = got[key].astype(np.float64)
            diffs[key] = max(diffs[key], float(np.max(np.abs(g - r))))
            agree[key] += int(np.sum(g.argmax(-1) == r.argmax(-1)))
            margins[key] = min(margins[key], float(_margin(r).min()))
        for i, label in enumerate(labels):
            if label is None:
                continue
            labelled += 1
            correct_torch += int(ref.final[i].argmax()) == label
            correct_bundle += int(got["final"][i].argmax()) == label
        n += len(labels)
    if n == 0:
        raise ValueError("no windows to compare; expected at least one (wave, frames) pair")
    outputs = {k: OutputParity(name=k, max_abs_diff=diffs[k], label_agreement=agree[k] / n,
                               disagreements=n - agree[k], min_torch_margin=margins[k])
               for k in OUTPUTS}
    return Comparison(
        outputs=MappingProxyType(outputs), windows=n, labelled_windows=labelled,
        accuracy_torch=correct_torch / labelled if labelled else None,
        accuracy_bundle=correct_bundle / labelled if labelled else None,
    )


def compare_bundle_to_checkpoint(bundle_dir: Path, ckpt_path: Path, windows: Iterable[Window],
                                 batch_size: int = PARITY_BATCH, threads: int = 0) -> ParityReport:
    """Run the same windows through the bundle (ORT CPU) and the checkpoint (torch)."""
    bundle = load_bundle(bundle_dir)
    ckpt = load_checkpoint(Path(ckpt_path))
    model = ckpt.build_model().eval()
    matches = bundle.manifest.provenance.checkpoint_sha256 == sha256_file(Path(ckpt_path))
    if not matches:
        log.warning("bundle %s was not exported from %s (checkpoint sha256 differs)", bundle_dir,
                    ckpt_path)
    c = compare(BundleRunner(bundle, threads), model, windows, batch_size)
    report = ParityReport(
        bundle=Path(bundle_dir), checkpoint=Path(ckpt_path), variant=bundle.variant,
        windows=c.windows, outputs=c.outputs, checkpoint_matches=matches,
        labelled_windows=c.labelled_windows, accuracy_torch=c.accuracy_torch,
        accuracy_bundle=c.accuracy_bundle,
    )
    log.info("%s", report.summary())
    return report
