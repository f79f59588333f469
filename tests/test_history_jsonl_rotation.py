"""JSON lines rotate by size or by UTC day (--jsonl-rotate), keeping the newest --jsonl-keep
renamed files; every line stays whole and none is lost across a rotation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_run import avstream
from net_env import CLASSES, hop_record
from test_history import summary

from avstream.errors import AvstreamError
from avstream.outputs.jsonl import JsonlSink, parse_rotation

DAY_S = 86_400
ROTATED_RE = re.compile(r"^hops\.\d{8}T\d{6}Z(-\d+)?\.jsonl$")


def windows_in(folder: Path) -> list[int]:
    """Every line of every hops file in ``folder``, as window indices, oldest file first (by
    last write: files renamed in the same second are told apart by -1, -2, ...)."""
    files = sorted(folder.glob("hops*.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    return [json.loads(line)["window"] for f in files for line in f.read_text().splitlines()]


def test_rotates_by_size_and_keeps_the_newest(tmp_path: Path) -> None:
    target = tmp_path / "hops.jsonl"
    line_bytes = len(json.dumps(hop_record(0, "park").to_json(), separators=(",", ":"))) + 1
    sink = JsonlSink(target, parse_rotation(f"{3 * line_bytes / 1000 + 0.01:.3f}KB", keep=100))
    for k in range(10):
        sink.hop(hop_record(k, CLASSES[k % 3]))
    sink.end(summary())
    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name != "hops.jsonl")
    assert len(rotated) == 3 and all(ROTATED_RE.match(n) for n in rotated), rotated
    assert all(p.stat().st_size <= 3 * line_bytes + 10 for p in tmp_path.iterdir())
    assert len(target.read_text().splitlines()) == 1  # 3 + 3 + 3 + 1
    assert sorted(windows_in(tmp_path)) == list(range(10))  # nothing lost, nothing repeated

    kept = JsonlSink(target, parse_rotation("1KB", keep=2))  # the file there is renamed first
    kept.end(summary())
    assert len([p for p in tmp_path.iterdir() if ROTATED_RE.match(p.name)]) == 2


def test_rotates_at_the_utc_day(tmp_path: Path) -> None:
    target = tmp_path / "hops.jsonl"
    now = [3 * DAY_S - 60.0]  # 23:59 UTC
    sink = JsonlSink(target, parse_rotation("daily"), clock=lambda: now[0])
    sink.hop(hop_record(0, "park"))
    sink.hop(hop_record(1, "park"))
    now[0] += 120.0  # 00:01 the next day
    sink.hop(hop_record(2, "metro"))
    sink.end(summary())
    rotated = [p for p in tmp_path.iterdir() if p.name != "hops.jsonl"]
    assert [p.name for p in rotated] == ["hops.19700103T235900Z.jsonl"]
    assert [json.loads(ln)["window"] for ln in rotated[0].read_text().splitlines()] == [0, 1]
    assert [json.loads(ln)["window"] for ln in target.read_text().splitlines()] == [2]


@pytest.mark.parametrize(("spec", "keep"), [("100", 14), ("-5MB", 14), ("weekly", 14),
                                             ("0MB", 14), ("10MB", 0)])
def test_bad_rotation_is_one_line(spec: str, keep: int) -> None:
    with pytest.raises(AvstreamError, match=r"^--jsonl-(rotate|keep) .*expected "):
        parse_rotation(spec, keep)


def test_replay_rotates_its_jsonl(tiny_bundle: Path, av_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "hops.jsonl"
    done = avstream("replay", str(av_file), "--model", str(tiny_bundle), "--fast", "--no-view",
                    "--jsonl", str(target), "--jsonl-rotate", "2KB", "--jsonl-keep", "50")
    assert done.returncode == 0, done.stderr[-2000:]
    windows = int(re.search(r"(\d+) windows", done.stdout).group(1))
    seen = windows_in(tmp_path)  # the first window ends one window length in
    assert seen == list(range(seen[0], seen[0] + windows))
    assert len(list(tmp_path.glob("hops.*Z*.jsonl"))) >= 2
    bad = avstream("replay", str(av_file), "--model", str(tiny_bundle), "--jsonl-rotate", "daily")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("avstream: error: --jsonl-rotate daily without a --jsonl file; "
                                  "expected --jsonl PATH as well")
