"""Pretrained VGG16 backbone weights from local files (torchvision .pth, Keras Places365 .h5).

This package file holds only the two records every converter shares, so the converters and
``load.py`` import them without a cycle. The entry point is ``training.weights.load.load_backbone``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avstream.errors import AvstreamError


class WeightsError(AvstreamError, ValueError):
    """A backbone weights file that is missing, unreadable or does not fit the model.

    An ``AvstreamError`` so a CLI prints its one-line message and exits with EXIT_USAGE; also a
    ``ValueError`` because it is a bad value handed to a library function.
    """


@dataclass(frozen=True)
class WeightsReport:
    """What was loaded into the backbone, for the training log and the checkpoint's metadata."""

    source: Path
    format: str
    """"torchvision" or "keras"."""
    layers: tuple[str, ...]
    """Names of the conv layers loaded, in the file's own naming, in network order."""
    pixel_norm: str
    """The ModelConfig.pixel_norm these weights were trained with ("imagenet" or "caffe_bgr")."""
    ignored: tuple[str, ...] = ()
    """Entries of the file that are not part of the conv stack (classifier, fc layers)."""

    @property
    def n_layers(self) -> int:
        return len(self.layers)
