"""Evaluation on 1-s segments (every clip cut into aligned 1-s windows), all four outputs.

Probabilities are the model's calibrated ones (its checkpoint's temperatures); the raw ones are
kept beside them, so each output reports log loss and expected calibration error both ways.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data.crops import CropIndex, batched
from training.metrics import Scores, expected_calibration_error, save_confusion_png, score
from training.model import AVSceneNet
from training.model.calibration import Temperatures, temper

log = logging.getLogger(__name__)

OUTPUTS = ("final", "early", "audio", "visual")
EVAL_BATCH = 16


@dataclass
class EvalResult:
    classes: tuple[str, ...]
    rows: np.ndarray
    """(N, 2): clip index, first frame slot k (segment = k / 5)."""
    labels: np.ndarray
    probs: dict[str, np.ndarray]
    """output name -> (N, classes), calibrated."""
    raw: dict[str, np.ndarray]
    """output name -> (N, classes), before temperature scaling."""
    temperatures: Temperatures

    def scores(self, output: str) -> Scores:
        return score(self.probs[output], self.labels, self.classes)

    def output_metrics(self, name: str) -> dict[str, float]:
        raw = score(self.raw[name], self.labels, self.classes)
        return {**self.scores(name).summary(), "log_loss_uncalibrated": raw.log_loss,
                "ece": expected_calibration_error(self.probs[name], self.labels),
                "ece_uncalibrated": expected_calibration_error(self.raw[name], self.labels),
                "temperature": self.temperatures.to_dict()[name]}

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: self.output_metrics(name) for name in OUTPUTS}
        final = self.scores("final")
        out["per_class_accuracy"] = final.per_class_accuracy
        out["confusion"] = final.confusion
        out["segments"] = int(len(self.labels))
        return out

    def save_confusion(self, path: Path) -> None:
        save_confusion_png(self.scores("final"), self.classes, path, "final (late fusion)")


@torch.no_grad()
def predict(model: AVSceneNet, index: CropIndex, device: torch.device,
            batch_size: int = EVAL_BATCH, calibrated: bool = True,
            waves: Callable[[np.ndarray], torch.Tensor] | None = None,
            on_batch: Callable[[], None] | None = None,
            ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(rows, output name -> probabilities) for every 1-s segment of ``index``.

    ``waves`` replaces ``index.waves`` (e.g. to feed the audio as mono); ``on_batch`` is called
    after each of the ``n_batches(index, batch_size)`` batches (a progress count)."""
    model.eval()
    rows = index.eval()
    get_waves = waves or index.waves
    parts: dict[str, list[np.ndarray]] = {k: [] for k in OUTPUTS}
    for b in batched(rows, batch_size):
        out = model(get_waves(b).to(device), index.frames(b).to(device), calibrated=False)
        for name in OUTPUTS:
            parts[name].append(getattr(out, name).cpu().numpy())
        if on_batch is not None:
            on_batch()
    empty = np.zeros((0, model.cfg.n_classes), dtype=np.float32)
    probs = {k: np.concatenate(v) if v else empty for k, v in parts.items()}
    return rows, calibrate(probs, model.calibration) if calibrated else probs


def n_batches(index: CropIndex, batch_size: int = EVAL_BATCH) -> int:
    """How many batches ``predict`` runs over ``index``."""
    return len(batched(index.eval(), batch_size))


def calibrate(raw: dict[str, np.ndarray], temperatures: Temperatures) -> dict[str, np.ndarray]:
    t = temperatures.to_dict()
    return {k: temper(torch.from_numpy(v), t[k]).numpy() for k, v in raw.items()}


def evaluate_model(model: AVSceneNet, index: CropIndex, device: torch.device,
                   waves: Callable[[np.ndarray], torch.Tensor] | None = None,
                   on_batch: Callable[[], None] | None = None) -> EvalResult:
    rows, raw = predict(model, index, device, calibrated=False, waves=waves, on_batch=on_batch)
    return EvalResult(model.cfg.classes, rows, index.label_of[rows[:, 0]],
                      calibrate(raw, model.calibration), raw, model.calibration)


def write_submission(path: Path, stems: list[str], rows: np.ndarray, probs: np.ndarray,
                     classes: tuple[str, ...]) -> None:
    """DCASE format: filename, scene_label, then one probability column per class (class order).

    The development clips are 10 s; each 1-s segment is named ``<stem>-<segment>`` (0..9).
    """
    order = sorted(range(len(classes)), key=lambda i: classes[i])
    lines = ["\t".join(["filename", "scene_label", *[classes[i] for i in order]])]
    for (clip, k), p in zip(rows, probs, strict=True):
        seg = int(k) // 5
        label = classes[int(p.argmax())]
        lines.append("\t".join([f"{stems[clip]}-{seg}", label, *[f"{p[i]:.6f}" for i in order]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
