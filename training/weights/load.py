"""One entry point for backbone weights: pick the converter, and refuse a pixel_norm mismatch.

Weights are only as good as the input convention they were trained with: torchvision's ImageNet
weights fed caffe-style BGR (or the reverse) still run, just badly, with no error anywhere. So
the model's ``cfg.pixel_norm`` must equal what the file's format needs, checked before anything
is copied; ``required_pixel_norm`` lets a recipe build the right config first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from training.model.avnet import AVSceneNet
from training.weights import WeightsError, WeightsReport, keras_places365, torchvision_vgg

log = logging.getLogger(__name__)

WeightsFormat = Literal["auto", "torchvision", "keras"]

LOADERS: dict[str, Callable[[Path, AVSceneNet], WeightsReport]] = {
    torchvision_vgg.FORMAT: torchvision_vgg.load_torchvision_vgg16,
    keras_places365.FORMAT: keras_places365.load_keras_places365,
}
PIXEL_NORMS: dict[str, str] = {
    torchvision_vgg.FORMAT: torchvision_vgg.PIXEL_NORM,
    keras_places365.FORMAT: keras_places365.PIXEL_NORM,
}
EXTENSIONS: dict[str, str] = {
    ".pth": torchvision_vgg.FORMAT,
    ".pt": torchvision_vgg.FORMAT,
    ".h5": keras_places365.FORMAT,
    ".hdf5": keras_places365.FORMAT,
}

NO_WEIGHTS_WARNING = (
    "WARNING: no backbone weights given (--backbone-weights): the VGG16 backbone starts from "
    "random initialisation; expect far lower visual accuracy than the paper's Places365 start"
)


def weights_format(path: str | Path, fmt: WeightsFormat = "auto") -> str:
    """The converter for ``path``: ``fmt`` itself, or chosen by the file extension."""
    if fmt != "auto":
        if fmt not in LOADERS:
            raise WeightsError(f"backbone weights format {fmt!r}; expected 'auto' or one of "
                               f"{sorted(LOADERS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    try:
        return EXTENSIONS[suffix]
    except KeyError as e:
        raise WeightsError(f"backbone weights {path}: extension {suffix or '(none)'!r} is not "
                           f"known; expected one of {sorted(EXTENSIONS)} or an explicit format "
                           f"{sorted(LOADERS)}") from e


def required_pixel_norm(path: str | Path, fmt: WeightsFormat = "auto") -> str:
    """The ModelConfig.pixel_norm the weights at ``path`` need (decided by their format)."""
    return PIXEL_NORMS[weights_format(path, fmt)]


def load_backbone(path: str | Path, model: AVSceneNet,
                  fmt: WeightsFormat = "auto") -> WeightsReport:
    """Load pretrained VGG16 conv weights into ``model.visual.encoder.backbone``.

    Raises WeightsError (one line) for a missing or unreadable file, a layer or shape that does
    not fit, or a model whose pixel_norm differs from the one the weights need; the model is
    left unchanged in every such case.
    """
    path = Path(path)
    chosen = weights_format(path, fmt)
    _check_pixel_norm(path, chosen, PIXEL_NORMS[chosen], model.cfg.pixel_norm)
    report = LOADERS[chosen](path, model)
    _check_pixel_norm(path, chosen, report.pixel_norm, model.cfg.pixel_norm)
    log.info("%s", backbone_status_message(report))
    return report


def backbone_status_message(report: WeightsReport | None) -> str:
    """The line a recipe logs and prints about where the backbone's weights came from."""
    if report is None:
        return NO_WEIGHTS_WARNING
    ignored = f", ignored {len(report.ignored)} non-backbone entries" if report.ignored else ""
    return (f"backbone weights: {report.n_layers} VGG16 conv layers from {report.source} "
            f"({report.format} format, pixel_norm={report.pixel_norm}{ignored})")


def _check_pixel_norm(path: Path, fmt: str, needed: str, configured: str) -> None:
    if needed != configured:
        raise WeightsError(f"backbone weights {path} ({fmt} format) need pixel_norm={needed!r} "
                           f"but the model config has pixel_norm={configured!r}; build the model "
                           f"with cfg.replace(pixel_norm={needed!r})")
