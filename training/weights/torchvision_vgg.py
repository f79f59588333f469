"""torchvision ``vgg16`` state dicts -> the model's VGG16Features (same parameter names).

torchvision is not a dependency (its wheels do not load with our CPU torch), so a file saved
elsewhere with ``torch.save(torchvision.models.vgg16(weights=...).state_dict(), path)`` is read
here with plain ``torch.load``. Everything is checked before anything is copied, so a file that
does not fit leaves the model as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from training.model.avnet import AVSceneNet
from training.weights import WeightsError, WeightsReport

log = logging.getLogger(__name__)

FORMAT = "torchvision"
PIXEL_NORM = "imagenet"
"""torchvision's ImageNet weights expect RGB in [0, 1] normalised by the ImageNet mean/std."""

FEATURES_PREFIX = "features."
IGNORED_PREFIXES = ("classifier.",)
"""The fully connected top: not part of the backbone, which ends at the last max-pool."""
_BARE_FEATURES_KEY = re.compile(r"^\d+\.(weight|bias)$")
"""Keys of ``vgg16().features.state_dict()`` (the Sequential saved on its own)."""


def load_torchvision_vgg16(path: str | Path, model: AVSceneNet) -> WeightsReport:
    """Load a torchvision vgg16 (or features-only) state dict into the backbone, strictly."""
    path = Path(path)
    state = _read_state_dict(path)
    features, ignored = _split_keys(state, path)
    backbone = model.visual.encoder.backbone
    checked = _checked_tensors(features, backbone.state_dict(), path, model.cfg.vgg_widths)
    backbone.load_state_dict(checked, strict=True)
    layers = tuple(
        f"{FEATURES_PREFIX}{i}" for i, m in enumerate(backbone.features) if isinstance(m, nn.Conv2d)
    )
    log.info("loaded %d VGG16 conv layers from %s (torchvision; ignored %d keys)",
             len(layers), path, len(ignored))
    return WeightsReport(source=path, format=FORMAT, layers=layers, pixel_norm=PIXEL_NORM,
                         ignored=tuple(ignored))


def _read_state_dict(path: Path) -> Mapping[str, object]:
    if not path.is_file():
        raise WeightsError(f"backbone weights {path}: no such file; expected a torchvision "
                           f"vgg16 state dict saved with torch.save (.pth/.pt)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load raises KeyError, EOFError, UnpicklingError or RuntimeError depending on the
    # bytes it meets; all of them mean the same thing to the user.
    except Exception as e:
        raise WeightsError(f"backbone weights {path}: not a readable torch state dict "
                           f"({type(e).__name__}: {_first_line(e)}); expected a file written by "
                           f"torch.save(vgg16().state_dict(), path)") from e
    if not isinstance(obj, Mapping):
        raise WeightsError(f"backbone weights {path}: holds a {type(obj).__name__}; expected a "
                           f"state dict (a mapping of parameter names to tensors)")
    return obj


def _split_keys(state: Mapping[str, object],
                path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """-> (backbone entries keyed as VGG16Features names them, ignored keys)."""
    keys = [str(k) for k in state]
    bare = bool(keys) and all(_BARE_FEATURES_KEY.match(k) for k in keys)
    features: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        name = f"{FEATURES_PREFIX}{key}" if bare else str(key)
        if name.startswith(IGNORED_PREFIXES):
            ignored.append(name)
            continue
        if not name.startswith(FEATURES_PREFIX):
            raise WeightsError(f"backbone weights {path}: unexpected key {key!r}; expected "
                               f"torchvision vgg16 keys 'features.<i>.weight|bias' "
                               f"('classifier.*' is ignored)")
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise WeightsError(f"backbone weights {path}: key {key!r} holds "
                               f"{_describe(value)}; expected a floating-point tensor")
        features[name] = value
    return features, ignored


def _checked_tensors(found: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                     path: Path, widths: tuple[int, ...]) -> dict[str, torch.Tensor]:
    missing = [k for k in expected if k not in found]
    if missing:
        k = missing[0]
        raise WeightsError(f"backbone weights {path}: missing key {k!r} (expected shape "
                           f"{tuple(expected[k].shape)}) and {len(missing) - 1} more; expected "
                           f"all {len(expected)} VGG16 conv weights and biases")
    extra = [k for k in found if k not in expected]
    if extra:
        raise WeightsError(f"backbone weights {path}: unexpected key {extra[0]!r} "
                           f"({len(extra)} in all); expected only the VGG16 (configuration D, no "
                           f"batch norm) conv weights and biases")
    for k, ref in expected.items():
        if tuple(found[k].shape) != tuple(ref.shape):
            raise WeightsError(f"backbone weights {path}: key {k!r} has shape "
                               f"{tuple(found[k].shape)}; expected {tuple(ref.shape)} for the "
                               f"model's vgg_widths={widths}")
    return {k: found[k].to(dtype=ref.dtype) for k, ref in expected.items()}


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor"
    return f"a {type(value).__name__}"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "no message"
