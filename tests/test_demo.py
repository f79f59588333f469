"""``avstream demo`` on a finished build: replays the recording and scores it against the truth.

The build itself (synthetic set -> recipe -> export -> recording, a few minutes) is measured by
hand and reported in bench/RESULTS.md; here the cache is filled from the session's fixtures,
which are built by the same commands.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from cli_run import avstream

from avstream.demo import cached_assets


def test_demo_replays_a_cached_build_and_reports_accuracy(trained_bundle: Path,
                                                          synth_stream: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    root = tmp_path / "demo"
    root.mkdir()
    shutil.copytree(trained_bundle, root / "bundle")
    shutil.copy(synth_stream[0], root / "recording.mp4")
    shutil.copy(synth_stream[1], root / "recording.csv")
    (root / "demo.json").write_text(json.dumps({"version": 1, "build_seconds": 1.0}))
    assert cached_assets(root) is not None
    res = avstream("demo", "--cache-dir", str(root), "--fast", "--no-view", "--jsonl",
                   str(tmp_path / "demo.jsonl"), timeout=600)
    assert res.returncode == 0, res.stderr
    assert "building" not in res.stderr  # a finished build is reused at once
    m = re.search(r"accuracy against the true scenes: ([\d.]+)% of (\d+) windows", res.stdout)
    assert m, res.stdout
    assert float(m.group(1)) >= 90.0 and int(m.group(2)) > 100
    lines = (tmp_path / "demo.jsonl").read_text().splitlines()
    assert len(lines) > 200 and json.loads(lines[-1])["modalities"] == ["audio", "video"]


def test_an_incomplete_build_is_not_used(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    (root / "bundle").mkdir(parents=True)
    (root / "demo.json").write_text("{}")
    assert cached_assets(root) is None
