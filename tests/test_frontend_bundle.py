"""Bundle format versions and the front-end rule their audio graphs carry.

Format 2 records the rule (``frontend``); format-1 bundles, made before it existed, load, run and
are reported with the old rule; a checkpoint saved before the rule was recorded exports with the
rule it was trained with, never silently with the new one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from cli_run import avstream, child_env, module, succeeded

from avstream.bundle import schema
from avstream.errors import EXIT_USAGE

SEED = 0
STEPS_ATOL = 1e-3


def _export(ckpt: Path, bundle: Path) -> None:
    succeeded(module("export", str(ckpt), str(bundle), timeout=600))


def _info(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # COLUMNS: one line per field, unwrapped
    return avstream("info", str(bundle), *args, env=child_env(COLUMNS="200"))


@pytest.fixture(scope="module")
def old_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint as saved before the rule was recorded: its config has no ``frontend``."""
    from training.checkpoint import Checkpoint, save_checkpoint
    from training.config import SMALL
    from training.model import AVSceneNet

    torch.manual_seed(SEED)
    model = AVSceneNet(SMALL.replace(frontend=schema.FRONTEND_V1)).eval()
    path = tmp_path_factory.mktemp("old") / "old.ckpt"
    save_checkpoint(path, Checkpoint(config=SMALL, state_dict=model.state_dict(), step="finetune"))
    payload = torch.load(path, weights_only=True)
    del payload["config"]["frontend"]
    torch.save(payload, path)
    return path


@pytest.fixture(scope="module")
def old_rule_bundle(old_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("old-bundle") / "bundle"
    _export(old_checkpoint, bundle)
    return bundle


def _mono_window(samples: int) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    mono = (0.2 * rng.standard_normal(samples)).astype(np.float32)
    return np.stack([mono, mono])[None]


def test_new_bundle_is_format_2_and_info_names_its_rule(tiny_bundle: Path) -> None:
    raw = json.loads((tiny_bundle / schema.MANIFEST_NAME).read_text())
    assert raw["format_version"] == schema.FORMAT_VERSION == 2
    assert raw["frontend"] == raw["provenance"]["config"]["frontend"] == schema.FRONTEND_V2
    res = _info(tiny_bundle)
    assert res.returncode == 0, res.stderr
    assert "minmax-lr-v2" in res.stdout and "mono-safe" in res.stdout


def test_old_checkpoint_exports_with_the_rule_it_was_trained_with(
        old_checkpoint: Path, old_rule_bundle: Path) -> None:
    from training.checkpoint import load_checkpoint

    raw = json.loads((old_rule_bundle / schema.MANIFEST_NAME).read_text())
    assert raw["format_version"] == 2 and raw["frontend"] == schema.FRONTEND_V1
    ckpt = load_checkpoint(old_checkpoint)
    assert ckpt.config.frontend == schema.FRONTEND_V1
    wave = _mono_window(ckpt.config.window_samples)
    session = ort.InferenceSession(str(old_rule_bundle / "audio.onnx"), providers=["CPUExecutionProvider"])
    (steps,) = session.run([schema.AUDIO_STEPS], {schema.WAVEFORM: wave})
    model = ckpt.build_model().eval()
    with torch.no_grad():
        old = model.audio(torch.from_numpy(wave))[1].numpy()
        model.audio.frontend.rule = schema.FRONTEND_V2
        new = model.audio(torch.from_numpy(wave))[1].numpy()
    np.testing.assert_allclose(steps, old, atol=STEPS_ATOL)
    assert np.abs(steps - new).max() > 10 * STEPS_ATOL  # the rules differ on mono: a real check


def test_format_1_bundle_loads_runs_and_says_its_rule(old_rule_bundle: Path, tmp_path: Path) -> None:
    from avstream.bundle.loader import load_bundle
    from avstream.driver import open_engine

    v1 = tmp_path / "v1"
    shutil.copytree(old_rule_bundle, v1)
    manifest = v1 / schema.MANIFEST_NAME
    raw = json.loads(manifest.read_text())
    raw["format_version"] = 1
    del raw["frontend"]
    manifest.write_text(json.dumps(raw))
    res = _info(v1)
    assert res.returncode == 0, res.stderr
    assert "minmax-lrs-v1" in res.stdout and "a mono microphone shifts them" in res.stdout
    as_json = json.loads(_info(v1, "--json").stdout)
    assert as_json["format_version"] == 1 and "frontend" not in as_json
    assert load_bundle(v1).manifest.frontend == schema.FRONTEND_V1
    engine = open_engine(v1, provider="cpu", threads=1, precision="fp32")
    f = engine.format
    frames = np.zeros((f.frames_per_window, f.frame_size, f.frame_size, 3), np.uint8)
    result = engine.infer(_mono_window(f.window_samples)[0], engine.encode_frames(frames))
    assert result.branch == "final" and result.probs.shape == (f.n_classes,)
    assert abs(float(result.probs.sum()) - 1) < 1e-3

def test_format_2_bundle_with_an_unknown_rule_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    manifest = bad / schema.MANIFEST_NAME
    raw = json.loads(manifest.read_text())
    raw["frontend"] = "minmax-x"
    manifest.write_text(json.dumps(raw))
    res = _info(bad)
    assert res.returncode == EXIT_USAGE
    assert "frontend" in res.stderr and "minmax-lr-v2" in res.stderr and "Traceback" not in res.stderr
