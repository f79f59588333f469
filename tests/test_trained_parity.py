"""The exported bundle of the recipe's model against PyTorch, on the synthetic validation split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from cli_run import avstream, child_env

from avstream.bundle import schema
from export.parity import compare_bundle_to_checkpoint
from export.quantize import load_split_windows
from training.checkpoint import load_checkpoint
from training.model.calibration import temper

FP32_ATOL = 1e-4


def test_fp32_bundle_equals_pytorch_on_validation_windows(trained_bundle: Path,
                                                          trained_checkpoint: Path,
                                                          synth_dataset: Path,
                                                          artifacts_dir: Path) -> None:
    cfg = load_checkpoint(trained_checkpoint).config
    windows = load_split_windows(synth_dataset, "evaluate", cfg, max_windows=200,
                                 cache_dir=artifacts_dir / "cache")
    assert len(windows) == 200  # every 1-s segment of the validation split
    report = compare_bundle_to_checkpoint(trained_bundle, trained_checkpoint, windows)
    for name, out in report.outputs.items():
        assert out.max_abs_diff <= FP32_ATOL, (name, out.max_abs_diff)
        assert out.label_agreement == 1.0, name
    assert report.passes(FP32_ATOL)
    assert report.checkpoint_matches  # the bundle names this checkpoint in its provenance


def test_info_json_shows_the_manifest_of_the_trained_bundle(trained_bundle: Path) -> None:
    res = avstream("info", str(trained_bundle), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["verified"] is True and info["format_version"] == 2 and info["variant"] == "fp32"
    assert info["frontend"] == info["provenance"]["config"]["frontend"] == "minmax-lr-v2"
    assert len(info["classes"]) == 10 and info["audio"]["sample_rate"] == 16000
    assert set(info["graphs"]) == {"audio", "frame", "head"}
    assert set(info["files"]) == {"audio.onnx", "frame.onnx", "head.onnx"}
    assert info["provenance"]["metrics"]["evaluation"]["final"]["accuracy"] >= 0.9
    assert info["export"]["opset"] >= 17


def _ort(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_bundle_probabilities_are_the_calibrated_ones(trained_bundle: Path, trained_checkpoint: Path,
                                                      synth_dataset: Path, artifacts_dir: Path) -> None:
    """The three graphs, run as the daemon runs them, give temper(raw torch output, T) for every
    output: the checkpoint's temperatures live inside the graphs."""
    ckpt = load_checkpoint(trained_checkpoint)
    temps = ckpt.temperatures.to_dict()
    manifest = json.loads((trained_bundle / "manifest.json").read_text())
    assert manifest["calibration"] == temps
    windows = load_split_windows(synth_dataset, "evaluate", ckpt.config, max_windows=40,
                                 cache_dir=artifacts_dir / "cache")
    waves = np.stack([w[0] for w in windows])
    frames = np.stack([w[1] for w in windows])
    b, t = frames.shape[:2]
    audio_probs, audio_steps = _ort(trained_bundle / "audio.onnx").run(
        [schema.AUDIO_PROBS, schema.AUDIO_STEPS], {schema.WAVEFORM: waves})
    (features,) = _ort(trained_bundle / "frame.onnx").run(
        None, {schema.FRAMES: frames.reshape(b * t, *frames.shape[2:])})
    visual, early, final = _ort(trained_bundle / "head.onnx").run(
        [schema.VISUAL_PROBS, schema.EARLY_PROBS, schema.FINAL_PROBS],
        {schema.FRAME_FEATURES: features.reshape(b, t, -1), schema.AUDIO_STEPS: audio_steps,
         schema.AUDIO_PROBS: audio_probs})
    with torch.no_grad():
        raw = ckpt.build_model().eval()(torch.from_numpy(waves), torch.from_numpy(frames),
                                        calibrated=False)
    got = {"final": final, "early": early, "audio": audio_probs, "visual": visual}
    for name, probs in got.items():
        expected = temper(getattr(raw, name), temps[name]).numpy()
        assert np.abs(probs - expected).max() <= FP32_ATOL, name
        if temps[name] != 1.0:  # and they are not the raw probabilities
            assert np.abs(probs - getattr(raw, name).numpy()).max() > 10 * FP32_ATOL, name


def test_info_shows_the_temperatures(trained_bundle: Path, trained_checkpoint: Path) -> None:
    res = avstream("info", str(trained_bundle), env=child_env(COLUMNS="200"))
    assert res.returncode == 0, res.stderr
    assert "calibration" in res.stdout
    final_t = load_checkpoint(trained_checkpoint).calibration["final"]
    line = next(x for x in res.stdout.splitlines() if x.strip().startswith("final "))
    assert f"{final_t:.4g}" in line
