"""Session fixtures: a synthetic TAU-layout set, a SMALL model trained on it by the real recipe,
its exported bundle, and a multi-scene recording to replay.

Built once per test session (about a minute or two on 2 cores). Set AVSTREAM_TEST_CACHE=DIR to
keep them between sessions while developing; CI always builds them fresh.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_run import module, succeeded

EXPORT_TIMEOUT_S = 900.0

TEST_DATA_SEED = 1234
TEST_CLIPS_PER_CLASS = 8
"""Four locations a class: one for fold1_evaluate, one held out of fold1_train for validation
(selection splits by location), two to train on."""
STREAM_SCENES = ("park", "metro", "street_traffic", "airport", "tram", "shopping_mall")
STREAM_SECONDS_PER_SCENE = 8.0
STREAM_SEED = 77


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` tests (minutes-long training runs, the benchmark scripts' own checks, torchrun)
    run only when -m names them, e.g.
    ``bash scripts/test.sh -m slow``; the default suite and CI leave them out."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("AVSTREAM_TEST_CACHE")
    if env:
        path = Path(env)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("artifacts")


def _once(marker: Path) -> bool:
    """True if the artefact behind ``marker`` still has to be built."""
    return not marker.exists()


@pytest.fixture(scope="session")
def synth_dataset(artifacts_dir: Path) -> Path:
    from training.synth.dataset import write_synthetic_dataset

    root = artifacts_dir / "synth"
    done = artifacts_dir / "synth.done"
    if _once(done):
        write_synthetic_dataset(root, clips_per_class=TEST_CLIPS_PER_CLASS, seed=TEST_DATA_SEED)
        done.touch()
    return root


@pytest.fixture(scope="session")
def trained_run(synth_dataset: Path, artifacts_dir: Path) -> Path:
    """The real four-step recipe (SMALL preset) on the synthetic set; returns the run directory."""
    from training.config import SMALL
    from training.train.options import RECIPES
    from training.train.recipe import RunOptions, run_recipe

    run = artifacts_dir / "run"
    if _once(run / "metrics.json"):
        opts = RunOptions(data=synth_dataset, out=run, config=SMALL, steps=RECIPES["small"],
                          seed=0, device="cpu", cache_root=artifacts_dir / "cache", progress=False)
        run_recipe(opts)
    return run


@pytest.fixture(scope="session")
def trained_checkpoint(trained_run: Path) -> Path:
    return trained_run / "finetune.ckpt"


@pytest.fixture(scope="session")
def trained_bundle(trained_checkpoint: Path, artifacts_dir: Path) -> Path:
    """The fp32 bundle exported from the trained checkpoint by the real export command."""
    bundle = artifacts_dir / "bundle"
    if _once(bundle / "manifest.json"):
        succeeded(module("export", str(trained_checkpoint), str(bundle), timeout=EXPORT_TIMEOUT_S))
    return bundle


@pytest.fixture(scope="session")
def synth_stream(artifacts_dir: Path) -> tuple[Path, Path]:
    """A recording moving through six scenes (H.264 + AAC) and the CSV of its true intervals."""
    from training.synth.stream import write_synthetic_stream

    mp4 = artifacts_dir / "stream.mp4"
    done = artifacts_dir / "stream.done"
    if _once(done):
        csv = write_synthetic_stream(mp4, list(STREAM_SCENES),
                                     seconds_per_scene=STREAM_SECONDS_PER_SCENE, seed=STREAM_SEED)
        done.write_text(str(csv))
    return mp4, Path(done.read_text())


@pytest.fixture(scope="session")
def tiny_bundle(artifacts_dir: Path) -> Path:
    """An untrained SMALL model through the real exporter (about 15 s)."""
    import torch

    from training.checkpoint import Checkpoint, save_checkpoint
    from training.config import SMALL
    from training.model import AVSceneNet

    root = artifacts_dir / "tiny"
    bundle = root / "bundle"
    if _once(bundle / "manifest.json"):
        root.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = AVSceneNet(SMALL).eval()
        ckpt = root / "tiny.ckpt"
        save_checkpoint(ckpt, Checkpoint(config=SMALL, state_dict=model.state_dict(),
                                         step="finetune"))
        succeeded(module("export", str(ckpt), str(bundle), timeout=EXPORT_TIMEOUT_S))
    return bundle


@pytest.fixture(scope="session")
def tiny_engine(tiny_bundle: Path):  # -> avstream.inference.engine.Engine
    from avstream.driver import open_engine

    return open_engine(tiny_bundle, provider="cpu", threads=1)


@pytest.fixture(scope="session")
def av_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-s H.264 + AAC clip written by PyAV (tests/replay_helpers.py)."""
    from replay_helpers import write_media

    return write_media(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=3.0)


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory):  # -> Iterator[live_env.PulseServer]
    """A private PulseAudio whose null sink's monitor is the microphone (tests/live_env.py), one
    per test module; skips with the reason (fails under AVSTREAM_REQUIRE_LIVE=1) where the
    microphone stack is missing."""
    from live_env import pulse_server

    with pulse_server(tmp_path_factory.mktemp("pulse")) as server:
        yield server


@pytest.fixture
def broker(tmp_path: Path):  # -> Iterator[net_env.Broker]
    """A Mosquitto of this test's own on a loopback port (tests/net_env.py)."""
    from net_env import mosquitto

    with mosquitto(tmp_path / "broker") as b:
        yield b
