"""``avstream demo`` from nothing: the real build (synthetic set -> demo-preset recipe -> export
-> recording) into ``AVSTREAM_CACHE``, an interrupted ``--rebuild`` that leaves it usable, and
its reuse.

The build trains the demo preset for real: minutes on 2 CPU cores, hence ``slow``: the default
suite and CI leave it out to stay inside their 20 minutes, ``bash scripts/test.sh -m slow`` runs
it. test_demo.py covers the replay and the scoring on a finished build in seconds.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import av
import pytest
from cli_run import Child, child_env, start

from avstream import demo

BUILD_TIMEOUT_S = 1800
ACCURACY = re.compile(r"accuracy against the true scenes: ([\d.]+)% of (\d+) windows")


def demo_process(cache: Path, workdir: Path, name: str, *args: str) -> Child:
    """``avstream demo --fast --no-view`` with ``AVSTREAM_CACHE=cache``, in its own process
    group: the build's steps are child processes, killed with it on a timeout. Its output goes
    to ``workdir/NAME.stdout`` and ``.stderr``."""
    return start("demo", "--fast", "--no-view", *args, workdir=workdir, bound_s=BUILD_TIMEOUT_S,
                 env=child_env(AVSTREAM_CACHE=str(cache)), name=name)


def run_demo(cache: Path, workdir: Path, name: str) -> subprocess.CompletedProcess[str]:
    run = demo_process(cache, workdir, name)
    try:
        code = run.wait(BUILD_TIMEOUT_S)
    finally:
        run.kill()
    return subprocess.CompletedProcess(run.proc.args, code, run.stdout_text(), run.stderr_text())


@pytest.mark.slow
def test_demo_builds_into_avstream_cache_reuses_and_rebuilds(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = cache / f"demo-v{demo.DEMO_VERSION}"  # AVSTREAM_CACHE holds the versioned folder
    first = run_demo(cache, tmp_path, "first")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "building the demo model and recording once into " + str(root) in first.stderr
    steps = ("synthetic dataset", "training: audio, visual, fusion steps", "ONNX export",
             "demo recording")
    for step in steps:
        assert f"  {step}" in first.stderr, step
    assert "four-step" not in first.stderr  # its fine-tuning step trains 0 epochs
    info = json.loads((root / "demo.json").read_text())
    assert info["version"] == demo.DEMO_VERSION and info["build_seconds"] > 0
    assert set(info["metrics"]) == {"final", "early", "audio", "visual"}
    manifest = json.loads((root / "bundle" / "manifest.json").read_text())
    assert manifest["provenance"]["config"]["preset"] == "demo"
    assert manifest["video"]["frame_width"] == 64 and manifest["audio"]["sample_rate"] == 48_000
    assert not (root / "cache").exists() and not root.with_name(root.name + ".partial").exists()
    with av.open(str(root / "recording.mp4")) as recording:  # with AAC: 52 % (demo.py)
        assert recording.streams.audio[0].codec_context.name == demo.DEMO_AUDIO_CODEC == "flac"
    m = ACCURACY.search(first.stdout)
    assert m and float(m.group(1)) >= 90.0, first.stdout[-2000:]
    assert "7/7 changes shown" in first.stdout, first.stdout[-2000:]
    assert int(m.group(2)) > 400  # of the ~600 windows of a 2-min recording

    # --rebuild starts over in a side folder; interrupted, it leaves the finished build usable.
    stamp = (root / "demo.json").read_text()
    rebuild = demo_process(cache, tmp_path, "rebuild", "--rebuild")
    try:
        assert rebuild.wait_for_stderr("synthetic dataset ...", BUILD_TIMEOUT_S), (
            rebuild.stderr_text()[-3000:])
        assert "building the demo model" in rebuild.stderr_text()
    finally:
        rebuild.kill()
    assert root.with_name(root.name + ".partial").is_dir()
    assert (root / "demo.json").read_text() == stamp

    again = run_demo(cache, tmp_path, "again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "building" not in again.stderr
    assert ACCURACY.search(again.stdout).group(0) == m.group(0)  # --fast: the same replay
