"""Backbone weight converters, each run on a file the test writes in that exact format."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from avstream.errors import EXIT_USAGE, AvstreamError
from training.config import SMALL, ModelConfig
from training.model import AVSceneNet
from training.model.vgg import POOL, vgg16_layout
from training.weights import WeightsError, WeightsReport
from training.weights.keras_places365 import KERAS_CONV_LAYERS, load_keras_places365
from training.weights.load import (
    backbone_status_message,
    load_backbone,
    required_pixel_norm,
    weights_format,
)
from training.weights.torchvision_vgg import load_torchvision_vgg16

CAFFE = SMALL.replace(pixel_norm="caffe_bgr")
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])
REF_SIZE = 32  # pixels: the smallest side five 2x2 max-pools allow, keeps the numpy reference fast


# ----------------------------------------------------------------------------- helpers

def _conv_shapes(widths: tuple[int, ...]) -> list[tuple[int, int]]:
    """(in, out) channels of the 13 convs of configuration D."""
    shapes, c_in = [], 3
    for item in vgg16_layout(widths):
        if item != POOL:
            shapes.append((c_in, int(item)))
            c_in = int(item)
    return shapes


def _torch_layer_kinds(widths: tuple[int, ...]) -> list[str]:
    """torchvision's features.<i> sequence: each conv is followed by a ReLU; pools stand alone."""
    kinds: list[str] = []
    for item in vgg16_layout(widths):
        kinds += ["pool"] if item == POOL else ["conv", "relu"]
    return kinds


def _torchvision_state(widths: tuple[int, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    """A hand-built torchvision vgg16() state dict: features.<i>.* plus a classifier top."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    shapes = iter(_conv_shapes(widths))
    for idx, item in enumerate(_torch_layer_kinds(widths)):
        if item == "conv":
            c_in, c_out = next(shapes)
            state[f"features.{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g)
            state[f"features.{idx}.bias"] = torch.randn(c_out, generator=g)
    state["classifier.0.weight"] = torch.randn(16, widths[-1] * 49, generator=g)
    state["classifier.0.bias"] = torch.randn(16, generator=g)
    state["classifier.6.weight"] = torch.randn(1000, 16, generator=g)
    state["classifier.6.bias"] = torch.randn(1000, generator=g)
    return state


def _keras_kernels(widths: tuple[int, ...], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-scaled random (h, w, in, out) kernels and biases, so 13 layers stay in range."""
    rng = np.random.default_rng(seed)
    out = []
    for c_in, c_out in _conv_shapes(widths):
        k = rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2.0 / (9 * c_in))
        b = rng.standard_normal(c_out) * 0.1
        out.append((k.astype(np.float32), b.astype(np.float32)))
    return out


def _write_keras_h5(path: Path, kernels: list[tuple[np.ndarray, np.ndarray]], *,
                    nest: bool = False, skip: str | None = None,
                    chunk_layer_names: bool = False) -> None:
    """Keras 2 save_weights layout, as keras.engine.saving.save_weights_to_hdf5_group writes it."""
    names: list[str] = ["input_1"]
    weights: dict[str, list[tuple[str, np.ndarray]]] = {"input_1": []}
    conv = iter(zip(KERAS_CONV_LAYERS, kernels, strict=True))
    for block, n in enumerate((2, 2, 3, 3, 3), start=1):
        for _ in range(n):
            name, (k, b) = next(conv)
            if name == skip:
                continue
            names.append(name)
            weights[name] = [(f"{name}/kernel:0", k), (f"{name}/bias:0", b)]
        names.append(f"block{block}_pool")
        weights[f"block{block}_pool"] = []
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if nest else f
        encoded = np.array([n.encode("utf8") for n in names])
        if chunk_layer_names:  # Keras splits attributes over 64 KiB into name0, name1, ...
            half = len(encoded) // 2
            root.attrs["layer_names0"] = encoded[:half]
            root.attrs["layer_names1"] = encoded[half:]
        else:
            root.attrs["layer_names"] = encoded
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.1.5"
        for name in names:
            g = root.create_group(name)
            g.attrs["weight_names"] = np.array([w.encode("utf8") for w, _ in weights[name]],
                                               dtype="S")
            for wname, value in weights[name]:
                g.create_dataset(wname, data=value)


def _np_conv(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """'same' 3x3 cross-correlation, (H, W, in) x (3, 3, in, out) -> (H, W, out), float64."""
    h, w, _ = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, k.shape[3]))
    for dy in range(3):
        for dx in range(3):
            out += xp[dy:dy + h, dx:dx + w, :] @ k[dy, dx].astype(np.float64)
    return out + b


def _np_vgg_features(rgb: np.ndarray, kernels: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Keras caffe preprocessing + VGG16 + global max-pool, straight from the Keras kernels."""
    x = rgb[..., ::-1].astype(np.float64) - CAFFE_MEAN_BGR
    layers = iter(kernels)
    for item in vgg16_layout(CAFFE.vgg_widths):
        if item == POOL:
            h, w, c = x.shape
            x = x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))
        else:
            k, b = next(layers)
            x = np.maximum(_np_conv(x, k, b), 0.0)
    return x.max(axis=(0, 1))


def _frames(n: int, size: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _snapshot(model: AVSceneNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.visual.encoder.backbone.state_dict().items()}


def _assert_unchanged(model: AVSceneNet, before: dict[str, torch.Tensor]) -> None:
    after = model.visual.encoder.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def _model(cfg: ModelConfig) -> AVSceneNet:
    torch.manual_seed(0)
    return AVSceneNet(cfg).eval()


# ----------------------------------------------------------------------------- torchvision

def test_torchvision_state_dict_loads_exactly_and_ignores_classifier(tmp_path: Path) -> None:
    state = _torchvision_state(SMALL.vgg_widths)
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    model = _model(SMALL)

    report = load_backbone(path, model)

    loaded = model.visual.encoder.backbone.state_dict()
    feature_keys = [k for k in state if k.startswith("features.")]
    assert sorted(loaded) == sorted(feature_keys)
    for k in feature_keys:
        assert torch.equal(loaded[k], state[k]), k
    assert report == WeightsReport(
        source=path, format="torchvision",
        layers=tuple(f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)),
        pixel_norm="imagenet",
        ignored=("classifier.0.weight", "classifier.0.bias", "classifier.6.weight",
                 "classifier.6.bias"),
    )


def test_torchvision_features_only_files_load(tmp_path: Path) -> None:
    """Both a VGG16Features state dict and a bare ``vgg16().features`` one (keys ``0.weight``)."""
    state = {k: v for k, v in _torchvision_state(SMALL.vgg_widths, seed=3).items()
             if k.startswith("features.")}
    bare = {k.removeprefix("features."): v for k, v in state.items()}
    for name, payload in (("prefixed.pt", state), ("bare.pt", bare)):
        torch.save(payload, tmp_path / name)
        model = _model(SMALL)
        report = load_torchvision_vgg16(tmp_path / name, model)
        loaded = model.visual.encoder.backbone.state_dict()
        assert all(torch.equal(loaded[k], state[k]) for k in state), name
        assert report.ignored == ()


def test_torchvision_wrong_widths_names_key_and_both_shapes(tmp_path: Path) -> None:
    path = tmp_path / "paper_like.pth"
    torch.save(_torchvision_state((16, 32, 64, 128)), path)
    model = _model(SMALL)
    before = _snapshot(model)

    with pytest.raises(WeightsError) as info:
        load_backbone(path, model)

    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg and "'features.0.weight'" in msg
    assert "(16, 3, 3, 3)" in msg and "(8, 3, 3, 3)" in msg
    _assert_unchanged(model, before)


def test_torchvision_missing_and_extra_keys(tmp_path: Path) -> None:
    state = _torchvision_state(SMALL.vgg_widths)
    del state["features.28.bias"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match=r"missing key 'features\.28\.bias'.*\(64,\)"):
        load_backbone(tmp_path / "missing.pth", _model(SMALL))

    bn = _torchvision_state(SMALL.vgg_widths)
    bn["features.1.running_mean"] = torch.zeros(8)  # a vgg16_bn file
    torch.save(bn, tmp_path / "bn.pth")
    with pytest.raises(WeightsError, match=r"unexpected key 'features\.1\.running_mean'"):
        load_backbone(tmp_path / "bn.pth", _model(SMALL))


def test_torchvision_not_a_weights_file_and_missing_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    with pytest.raises(WeightsError, match="not a readable torch state dict"):
        load_backbone(text, _model(SMALL))

    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="holds a list; expected a state dict"):
        load_backbone(tmp_path / "list.pt", _model(SMALL))

    with pytest.raises(WeightsError, match="no such file"):
        load_backbone(tmp_path / "absent.pth", _model(SMALL))


# ----------------------------------------------------------------------------- keras

def test_keras_first_conv_is_a_correlation_with_the_keras_kernel(tmp_path: Path) -> None:
    kernels = _keras_kernels(CAFFE.vgg_widths)
    path = tmp_path / "vgg16_places365_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _write_keras_h5(path, kernels)
    model = _model(CAFFE)
    load_backbone(path, model)

    x = np.random.default_rng(2).standard_normal((9, 11, 3))  # non-square: catches h/w swaps
    conv = model.visual.encoder.backbone.features[0]
    with torch.no_grad():
        got = conv(torch.from_numpy(x).float().permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    k, b = kernels[0]
    np.testing.assert_allclose(got, _np_conv(x, k, b), rtol=1e-5, atol=1e-5)
    flipped = _np_conv(x, k[::-1, ::-1], b)  # a convolution (flipped kernel) must not match
    assert not np.allclose(got, flipped, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("nest", [False, True], ids=["save_weights", "full_model_file"])
def test_keras_backbone_with_caffe_bgr_matches_numpy_reference(tmp_path: Path, nest: bool) -> None:
    kernels = _keras_kernels(CAFFE.vgg_widths, seed=5)
    path = tmp_path / "places.h5"
    _write_keras_h5(path, kernels, nest=nest)
    model = _model(CAFFE)

    report = load_backbone(path, model)

    assert report.format == "keras" and report.pixel_norm == "caffe_bgr"
    assert report.layers == KERAS_CONV_LAYERS and report.n_layers == 13
    frames = _frames(2, REF_SIZE)
    # One layer: PixelNormalizer (RGB->BGR, minus caffe means) then block1_conv1 + ReLU.
    encoder = model.visual.encoder
    with torch.no_grad():
        first = encoder.backbone.features[:2](encoder.normalize(torch.from_numpy(frames)))
    bgr = frames[0][..., ::-1].astype(np.float64) - CAFFE_MEAN_BGR
    ref_first = np.maximum(_np_conv(bgr, *kernels[0]), 0.0)
    np.testing.assert_allclose(first[0].permute(1, 2, 0).numpy(), ref_first, rtol=1e-5, atol=1e-3)
    # The whole frame encoder (13 convs, 5 pools, global max-pool).
    with torch.no_grad():
        got = model.encode_frames(torch.from_numpy(frames)).numpy()
    ref = np.stack([_np_vgg_features(f, kernels) for f in frames])
    assert ref.max() > 0  # the reference did not die to all-zero ReLUs
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * ref.max())


def test_keras_chunked_layer_names_attribute(tmp_path: Path) -> None:
    kernels = _keras_kernels(CAFFE.vgg_widths, seed=7)
    _write_keras_h5(tmp_path / "chunked.h5", kernels, chunk_layer_names=True)
    model = _model(CAFFE)
    load_keras_places365(tmp_path / "chunked.h5", model)
    last = model.visual.encoder.backbone.conv_layers()[-1]
    k, b = kernels[-1]
    assert torch.equal(last.weight, torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
    assert torch.equal(last.bias, torch.from_numpy(b))


def test_keras_missing_layer_and_wrong_shape(tmp_path: Path) -> None:
    kernels = _keras_kernels(CAFFE.vgg_widths)
    _write_keras_h5(tmp_path / "holey.h5", kernels, skip="block3_conv2")
    model = _model(CAFFE)
    before = _snapshot(model)
    with pytest.raises(WeightsError, match=r"layer 'block3_conv2' not found"):
        load_backbone(tmp_path / "holey.h5", model)
    _assert_unchanged(model, before)  # block1/2 were readable but nothing was copied

    wide = _keras_kernels((16, 32, 64, 128))
    _write_keras_h5(tmp_path / "wide.h5", wide)
    with pytest.raises(WeightsError) as info:
        load_backbone(tmp_path / "wide.h5", model)
    msg = str(info.value)
    assert "'block1_conv1' kernel has shape (3, 3, 3, 16); expected (3, 3, 3, 8)" in msg
    assert "\n" not in msg
    _assert_unchanged(model, before)


def test_keras_not_hdf5_no_layout_and_missing_file(tmp_path: Path) -> None:
    model = _model(CAFFE)
    fake = tmp_path / "weights.h5"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n not hdf5 at all")
    with pytest.raises(WeightsError, match="not an HDF5 file"):
        load_backbone(fake, model)

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsError, match="no 'layer_names' attribute"):
        load_backbone(tmp_path / "other.h5", model)

    with pytest.raises(WeightsError, match="no such file"):
        load_backbone(tmp_path / "absent.h5", model)


# ----------------------------------------------------------------------------- dispatch

def test_pixel_norm_mismatch_is_refused_with_both_values(tmp_path: Path) -> None:
    _write_keras_h5(tmp_path / "places.h5", _keras_kernels(SMALL.vgg_widths))
    model = _model(SMALL)  # pixel_norm "imagenet"
    before = _snapshot(model)
    with pytest.raises(WeightsError) as info:
        load_backbone(tmp_path / "places.h5", model)
    msg = str(info.value)
    assert "pixel_norm='caffe_bgr'" in msg and "pixel_norm='imagenet'" in msg
    _assert_unchanged(model, before)

    torch.save(_torchvision_state(SMALL.vgg_widths), tmp_path / "vgg16.pth")
    mismatch = r"need pixel_norm='imagenet' but .*pixel_norm='caffe_bgr'"
    with pytest.raises(WeightsError, match=mismatch):
        load_backbone(tmp_path / "vgg16.pth", _model(CAFFE))


def test_format_dispatch_and_required_pixel_norm(tmp_path: Path) -> None:
    assert weights_format("a.pth") == "torchvision" and weights_format("a.PT") == "torchvision"
    assert weights_format("a.h5") == "keras" and weights_format("a.hdf5") == "keras"
    assert weights_format("a.bin", "keras") == "keras"
    assert required_pixel_norm("x.h5") == "caffe_bgr"
    assert required_pixel_norm("x.pth") == "imagenet"
    with pytest.raises(WeightsError, match=r"extension '\.bin' is not known"):
        weights_format("a.bin")
    with pytest.raises(WeightsError, match="format 'caffe'"):
        weights_format("a.h5", "caffe")  # type: ignore[arg-type]

    # An explicit format overrides the extension.
    torch.save(_torchvision_state(SMALL.vgg_widths), tmp_path / "vgg16.weights")
    report = load_backbone(tmp_path / "vgg16.weights", _model(SMALL), fmt="torchvision")
    assert report.format == "torchvision"


def test_status_message_and_error_type(tmp_path: Path) -> None:
    warning = backbone_status_message(None)
    assert warning.startswith("WARNING") and "random initialisation" in warning
    assert "--backbone-weights" in warning

    _write_keras_h5(tmp_path / "places.h5", _keras_kernels(CAFFE.vgg_widths))
    report = load_backbone(tmp_path / "places.h5", _model(CAFFE))
    line = backbone_status_message(report)
    assert "13 VGG16 conv layers" in line and str(tmp_path / "places.h5") in line
    assert "pixel_norm=caffe_bgr" in line and "WARNING" not in line

    err = WeightsError("x")
    assert isinstance(err, AvstreamError) and isinstance(err, ValueError)
    assert err.exit_code == EXIT_USAGE
