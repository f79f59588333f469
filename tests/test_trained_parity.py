"""The exported bundle of the recipe's model against PyTorch, on the synthetic validation split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from export.parity import compare_bundle_to_checkpoint
from export.quantize import load_split_windows
from training.checkpoint import load_checkpoint

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
    res = subprocess.run([sys.executable, "-m", "avstream", "info", str(trained_bundle), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["verified"] is True and info["format_version"] == 1 and info["variant"] == "fp32"
    assert len(info["classes"]) == 10 and info["audio"]["sample_rate"] == 16000
    assert set(info["graphs"]) == {"audio", "frame", "head"}
    assert set(info["files"]) == {"audio.onnx", "frame.onnx", "head.onnx"}
    assert info["provenance"]["metrics"]["evaluation"]["final"]["accuracy"] >= 0.9
    assert info["export"]["opset"] >= 17
