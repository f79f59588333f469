"""Keras 2 VGG16 weights (.h5, e.g. the seed's Places365 "notop" file) -> VGG16Features.

Keras 2 ``save_weights`` layout: the root (or ``model_weights`` in a full-model file) has the
attribute ``layer_names``; each layer is a group whose attribute ``weight_names`` lists dataset
paths inside it (``block1_conv1/kernel:0``, ``block1_conv1/bias:0``). Kernels are
(h, w, in, out); torch wants (out, in, h, w). Keras Conv2D is a cross-correlation like torch's,
so the kernel is transposed, never flipped. The 13 conv layers are found by their Keras VGG16
names; anything else in the file (the fc top of a full file) is reported as ignored.

These weights expect Keras "caffe" preprocessing: BGR in 0..255 minus the ImageNet BGR means,
which is ModelConfig pixel_norm="caffe_bgr".
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from training.model.avnet import AVSceneNet
from training.weights import WeightsError, WeightsReport

log = logging.getLogger(__name__)

FORMAT = "keras"
PIXEL_NORM = "caffe_bgr"
"""Keras ``preprocess_input`` mode "caffe": RGB->BGR, minus (103.939, 116.779, 123.68)."""

VGG16_BLOCK_CONVS = (2, 2, 3, 3, 3)
"""Conv layers per VGG16 block (configuration D)."""
KERAS_CONV_LAYERS = tuple(
    f"block{b}_conv{c}" for b, n in enumerate(VGG16_BLOCK_CONVS, start=1) for c in range(1, n + 1)
)
"""The names keras.applications.VGG16 and the Places365 port give the 13 conv layers."""
WEIGHTS_GROUP = "model_weights"
"""Where a full-model file (``model.save``) nests the save_weights layout."""
_KERAS_TO_TORCH_KERNEL = (3, 2, 0, 1)
"""(h, w, in, out) -> (out, in, h, w)."""
_SHOWN_NAMES = 8


def load_keras_places365(path: str | Path, model: AVSceneNet) -> WeightsReport:
    """Load the 13 conv layers of a Keras 2 VGG16 weights file into the model's backbone."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"backbone weights {path}: no such file; expected a Keras VGG16 .h5 "
                           f"(e.g. vgg16_places365_weights_tf_dim_ordering_tf_kernels_notop.h5)")
    if not h5py.is_hdf5(path):
        raise WeightsError(f"backbone weights {path}: not an HDF5 file; expected a Keras 2 "
                           f"save_weights .h5")
    backbone = model.visual.encoder.backbone
    convs = backbone.conv_layers()
    if len(convs) != len(KERAS_CONV_LAYERS):
        raise WeightsError(f"model backbone has {len(convs)} conv layers; expected "
                           f"{len(KERAS_CONV_LAYERS)} (VGG16)")
    try:
        with h5py.File(path, "r") as f:
            root = _weights_root(f, path)
            names = _attr_strings(root, "layer_names")
            tensors = [_read_conv(root, names, name, conv, path, model.cfg.vgg_widths)
                       for name, conv in zip(KERAS_CONV_LAYERS, convs, strict=True)]
            ignored = tuple(n for n in names
                            if n not in KERAS_CONV_LAYERS and _has_weights(root, n))
    except OSError as e:
        raise WeightsError(f"backbone weights {path}: HDF5 read failed ({e}); expected an "
                           f"intact Keras 2 save_weights .h5") from e
    with torch.no_grad():
        for conv, (weight, bias) in zip(convs, tensors, strict=True):
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
    log.info("loaded %d VGG16 conv layers from %s (Keras; ignored layers %s)",
             len(tensors), path, list(ignored))
    return WeightsReport(source=path, format=FORMAT, layers=KERAS_CONV_LAYERS,
                         pixel_norm=PIXEL_NORM, ignored=ignored)


def keras_kernel_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """(h, w, in, out) Keras kernel -> (out, in, h, w) torch weight; a transpose, no flip."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(_KERAS_TO_TORCH_KERNEL)))


def _weights_root(f: h5py.File, path: Path) -> h5py.Group:
    if _has_attr(f, "layer_names"):
        return f
    nested = f.get(WEIGHTS_GROUP)
    if isinstance(nested, h5py.Group) and _has_attr(nested, "layer_names"):
        return nested
    raise WeightsError(f"backbone weights {path}: no 'layer_names' attribute at the root or under "
                       f"'{WEIGHTS_GROUP}'; expected a Keras 2 save_weights .h5 (Keras 3 "
                       f".weights.h5 files are not supported)")


def _has_attr(group: h5py.Group, name: str) -> bool:
    return name in group.attrs or f"{name}0" in group.attrs


def _attr_strings(group: h5py.Group, name: str) -> list[str]:
    """A list-of-strings attribute; Keras 2 splits long ones into ``name0``, ``name1``, ..."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values = []
        chunk = 0
        while f"{name}{chunk}" in group.attrs:
            values += list(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _has_weights(root: h5py.Group, name: str) -> bool:
    group = root.get(name)
    return isinstance(group, h5py.Group) and bool(_attr_strings(group, "weight_names"))


def _read_conv(root: h5py.Group, names: list[str], name: str, conv: nn.Conv2d, path: Path,
               widths: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    group = root.get(name) if name in names else None
    if not isinstance(group, h5py.Group):
        shown = ", ".join(names[:_SHOWN_NAMES]) + (", ..." if len(names) > _SHOWN_NAMES else "")
        raise WeightsError(f"backbone weights {path}: layer {name!r} not found (file has layers "
                           f"[{shown}]); expected the 13 Keras VGG16 conv layers "
                           f"{KERAS_CONV_LAYERS[0]}..{KERAS_CONV_LAYERS[-1]}")
    arrays: list[np.ndarray] = []
    for weight_name in _attr_strings(group, "weight_names"):
        dataset = group.get(weight_name)
        if not isinstance(dataset, h5py.Dataset):
            raise WeightsError(f"backbone weights {path}: layer {name!r} lists weight "
                               f"{weight_name!r} but has no such dataset")
        arrays.append(np.asarray(dataset[()]))
    kernels = [a for a in arrays if a.ndim == 4]
    biases = [a for a in arrays if a.ndim == 1]
    if len(arrays) != 2 or len(kernels) != 1 or len(biases) != 1:
        raise WeightsError(f"backbone weights {path}: layer {name!r} has weights of shapes "
                           f"{[a.shape for a in arrays]}; expected a 4-D kernel and a 1-D bias")
    kernel, bias = kernels[0], biases[0]
    if not (np.issubdtype(kernel.dtype, np.floating) and np.issubdtype(bias.dtype, np.floating)):
        raise WeightsError(f"backbone weights {path}: layer {name!r} holds {kernel.dtype}/"
                           f"{bias.dtype} weights; expected floating point")
    out_ch, in_ch, kh, kw = conv.weight.shape
    want_kernel = (kh, kw, in_ch, out_ch)
    if kernel.shape != want_kernel:
        hint = (" (looks channels-first: expected the tf_dim_ordering file)"
                if kernel.shape == tuple(conv.weight.shape) else "")
        raise WeightsError(f"backbone weights {path}: layer {name!r} kernel has shape "
                           f"{kernel.shape}; expected {want_kernel} (h, w, in, out) for the "
                           f"model's vgg_widths={widths}{hint}")
    if bias.shape != (out_ch,):
        raise WeightsError(f"backbone weights {path}: layer {name!r} bias has shape "
                           f"{bias.shape}; expected {(out_ch,)}")
    weight = keras_kernel_to_torch(kernel).to(dtype=conv.weight.dtype)
    return weight, torch.from_numpy(np.ascontiguousarray(bias)).to(dtype=conv.bias.dtype)
