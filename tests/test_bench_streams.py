"""bench/streams.py end to end on the tiny bundle (as both bundles), with the shortest settings:
every figure the issue asks for is reported as a number. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import module

KEYS = ("streams_batched_int8", "streams_processes_int8", "streams_batched_demo",
        "streams_processes_demo", "rss_mb_per_stream_batched",
        "delivered_share_min_over_capacity")


@pytest.mark.slow  # a benchmark script's own check (exports and timed rounds, about a minute): run with -m slow, outside CI's 20-minute budget
def test_bench_streams_reports_every_figure(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "streams.json"
    r = module("bench.streams", "--json", "--out", str(out), "--int8", str(tiny_bundle), "--demo",
               str(tiny_bundle), "--seconds", "3", "--max-streams", "1", "--batch-files", "1",
               "--cache", str(tmp_path / "cache"), timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(report[key], int | float), key
    hours = report["batch_stream_hours_per_hour"]
    assert set(hours) == {"1", "2"} and all(h > 0 for h in hours.values())
    trial = report["int8"]["batched"]["trials"][0]
    assert trial["streams"] == 1 and trial["per_stream"]["rss_mb"] > 0
    over = report["int8"]["batched"]["over_capacity"]
    assert over["streams"] >= 2 and 0 <= over["delivered_share_min"] <= 1
