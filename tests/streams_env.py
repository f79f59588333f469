"""Fixtures shared by the many-streams tests (batch, serve, Ray): three short recordings and
helpers to compare JSON lines. Import the fixtures into a test module by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_run import avstream

STREAM_SCENES: tuple[tuple[str, str], ...] = (("park", "metro"), ("tram", "airport"),
                                              ("bus", "street_traffic"))
SECONDS_PER_SCENE = 3.0
STREAM_SEED = 500
RUN_DEPENDENT = ("latency_ms", "wall_time", "stream")
"""JSON keys that depend on the run or the command, not on the recording."""
PROB_TOLERANCE = 1e-5
"""Batched and single inference may differ in the last float bits; JSON keeps 6 decimals."""


@pytest.fixture(scope="session")
def three_streams(artifacts_dir: Path) -> list[Path]:
    """Three 6-s recordings (H.264 + AAC), two scenes each, different seeds (built once)."""
    from training.synth.stream import write_synthetic_stream

    root = artifacts_dir / "three-streams"
    paths = [root / f"s{i}.mp4" for i in range(len(STREAM_SCENES))]
    done = root / "done"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        for i, (p, scenes) in enumerate(zip(paths, STREAM_SCENES, strict=True)):
            write_synthetic_stream(p, list(scenes), seconds_per_scene=SECONDS_PER_SCENE,
                                   seed=STREAM_SEED + i)
        done.touch()
    return paths


def read_records(path: Path) -> list[dict[str, Any]]:
    """JSON lines without the run-dependent keys."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        for k in RUN_DEPENDENT:
            d.pop(k, None)
        out.append(d)
    return out


def assert_same_records(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Same windows, labels, modalities and counters; probabilities within PROB_TOLERANCE."""
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        for key in ("probs", "raw_probs"):
            gp, wp = g.pop(key), w.pop(key)
            assert gp.keys() == wp.keys()
            assert max(abs(gp[c] - wp[c]) for c in gp) <= PROB_TOLERANCE, (g["window"], key)
        for key in ("confidence", "raw_confidence"):
            assert abs(g.pop(key) - w.pop(key)) <= PROB_TOLERANCE
        assert g == w


def replay_fast(media: Path, bundle: Path, out: Path) -> list[dict[str, Any]]:
    """What a single ``avstream replay --fast --jsonl`` prints for ``media``."""
    done = avstream("replay", str(media), "--model", str(bundle), "--fast", "--jsonl", str(out),
                    "--no-view", "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    return read_records(out)


def write_config(path: Path, bundle: Path, streams: dict[str, str], extra: str = "") -> Path:
    """A serve config at ``path``: ``streams`` maps names to their source lines, each stream
    writes ``<name>.jsonl`` beside the config."""
    lines = [f'model = "{bundle}"', "threads = 1", "max_batch_wait_ms = 50", extra, ""]
    for name, body in streams.items():
        lines += [f"[streams.{name}]", body, f"[streams.{name}.outputs]",
                  f'jsonl = "{path.parent / f"{name}.jsonl"}"', ""]
    path.write_text("\n".join(lines))
    return path


def file_stream(media: Path, pace: str = "fast") -> str:
    """The source lines of a file stream."""
    return f'file = "{media}"\npace = "{pace}"'
