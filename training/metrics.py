"""DCASE Task 1B metrics on 1-s segments: multiclass log loss (primary) and accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOG_LOSS_EPS = 1e-15  # scikit-learn's clipping, used by the DCASE evaluation code
ECE_BINS = 15  # equal-width confidence bins (Guo et al. 2017, "On calibration of modern NNs")


@dataclass(frozen=True)
class Scores:
    accuracy: float
    log_loss: float
    per_class_accuracy: dict[str, float]
    confusion: list[list[int]]
    """confusion[true][predicted], rows and columns in class order."""

    def summary(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "log_loss": self.log_loss}


def score(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> Scores:
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0] or probs.shape[1] != len(classes):
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} do not match "
                         f"{len(classes)} classes")
    p = np.clip(probs.astype(np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    p /= p.sum(axis=1, keepdims=True)
    log_loss = float(-np.log(p[np.arange(len(labels)), labels]).mean()) if len(labels) else float("nan")
    pred = probs.argmax(axis=1)
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    totals = confusion.sum(axis=1)
    per_class = {c: (float(confusion[i, i] / totals[i]) if totals[i] else float("nan"))
                 for i, c in enumerate(classes)}
    accuracy = float((pred == labels).mean()) if len(labels) else float("nan")
    return Scores(accuracy, log_loss, per_class, confusion.tolist())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width bins of the top probability, weighted by
    the share of examples in each bin (0: confidence matches accuracy everywhere)."""
    if not len(labels):
        return float("nan")
    confidence = probs.max(axis=1).astype(np.float64)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    gap = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            gap += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(gap)


def save_confusion_png(scores: Scores, classes: tuple[str, ...], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(scores.confusion)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {scores.accuracy:.3f}, log loss {scores.log_loss:.3f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
