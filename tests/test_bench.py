"""Smoke test of the benchmarks: both scripts run end to end on the SMALL model and report
every figure the issue asks for as a number. No timing is asserted; only what the benchmark
counts (frames encoded per hop with and without the feature cache) is checked."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from cli_run import module

LATENCY_KEYS = ("hop_p50_ms", "hop_p99_ms", "rtf", "torch_over_ort", "int8_hop_p50_ms",
                "overhead_pct", "delay_p50_ms", "delay_p99_ms", "int8_delay_p50_ms",
                "rtf_cpu_sync", "rtf_cpu_pipelined", "rtf_cpu_change_pct")
STREAM_KEYS = ("windows_per_s", "rtf", "cpu_pct", "rss_peak_mb", "rss_growth_pct",
               "encodes_per_stream_s_cached", "encodes_per_stream_s_uncached", "idle_cpu_pct")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("AVSTREAM_TEST_CACHE")
    if env:
        path = Path(env) / "bench"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("bench-cache")


def _run(name: str, *args: str) -> dict:
    """``python -m bench.NAME --json ARGS`` from the repo root, as docs/benchmarks.md runs it."""
    proc = module(f"bench.{name}", "--json", *args, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.slow  # a benchmark script's own check (exports and timed rounds, about a minute): run with -m slow, outside CI's 20-minute budget
def test_latency_reports_every_figure(bench_cache: Path, tmp_path: Path) -> None:
    png = tmp_path / "hop.png"
    report = _run("latency", "--config", "small", "--iters", "4", "--warmup", "1",
                  "--rounds", "2", "--cache", str(bench_cache), "--plot", str(png))
    for key in LATENCY_KEYS:
        assert _is_number(report[key]), (key, report[key])
    variants = {(v["provider"], v["variant"]) for v in report["variants"]}
    assert ("CPUExecutionProvider", "fp32") in variants
    assert ("CPUExecutionProvider", "int8") in variants
    assert ("CPUExecutionProvider", "auto") in variants  # the CPU default, beside fp32
    assert _is_number(report["auto_delay_p50_ms"])
    assert report["auto_delay_p50_not_worse_than_fp32"] in (True, False)
    for v in report["variants"]:
        # The daemon's hop brings one new frame: the cache must spare the other four.
        assert v["frames_encoded_per_hop"] == 1.0
        for stage in ("audio", "frame_per_frame", "head", "smooth", "hop", "overhead"):
            assert v["stages_ms"][stage]["n"] == 4
            assert _is_number(v["stages_ms"][stage]["p99"])
        # The pipelined run at live pace: the same windows, each frame encoded once, ahead.
        paced = v["pipelined"]
        assert paced["stages_ms"]["delay"]["n"] == 4 and paced["hops_dropped"] == 0
        assert paced["frames_encoded_ahead"] >= 5
        # ... compared with the synchronous pipeline at the same pace, in alternating rounds.
        assert _is_number(paced["synchronous"]["rtf_cpu"])
        assert len(paced["rtf_cpu_by_round"]) == len(paced["synchronous"]["rtf_cpu_by_round"])
        # Round by round, so that a slow spell of the machine shows where it fell.
        rounds = paced["rounds"]
        for mode in (paced, paced["synchronous"]):
            assert len(mode["delay_p99_by_round"]) == len(mode["frame_p50_by_round"]) == rounds
            assert all(_is_number(x) for x in mode["delay_p99_by_round"])
            assert mode["hops_dropped_by_round"] == [0] * rounds
    assert report["machine"]["cpu_model"]
    assert "CPUExecutionProvider" in report["machine"]["providers_available"]
    assert png.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow  # a benchmark script's own check (exports and timed rounds, about a minute): run with -m slow, outside CI's 20-minute budget
def test_stream_reports_every_figure(bench_cache: Path) -> None:
    report = _run("throughput", "--config", "small", "--minutes", "0.2",
                  "--uncached-minutes", "0.1", "--idle-seconds", "0.5",
                  "--cache", str(bench_cache))
    for key in STREAM_KEYS:
        assert _is_number(report[key]), (key, report[key])
    assert report["windows"] >= 50  # 12 s of stream at 5 hops per second, after the first second
    assert report["counters"]["corrupt_packets"] == 0
    # Cache on: about one encode per hop (5 per stream second); off: every frame of every window.
    cached = report["encodes_per_stream_s_cached"]
    uncached = report["encodes_per_stream_s_uncached"]
    assert 5.0 <= cached < 6.0
    assert uncached == pytest.approx(25.0)


def test_gpu_bench_without_a_gpu_says_so_in_one_line_and_exits_0() -> None:
    """CI's path of bench/gpu.py: no GPU here, so one line and exit 0, as JSON and as text."""
    from bench.gpu import detect_gpus

    gpus, _ = detect_gpus()
    if gpus:
        pytest.skip(f"this checks the path of a machine without a GPU; this one has {gpus}")
    runs = {"json": ("--json",), "text": ()}
    for kind, args in runs.items():
        proc = module("bench.gpu", *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, proc.stdout
        text = json.loads(lines[0])["reason"] if kind == "json" else lines[0]
        assert "no GPU on this machine" in text, text
    assert json.loads(module("bench.gpu", *runs["json"]).stdout)["gpus"] == []


def test_gpu_bench_reports_a_failing_part_and_goes_on() -> None:
    """Each part runs in its own process: one that fails is reported with its reason, the run
    still exits 0 and says which parts it did not measure (here on the CPU: a check of the
    script, not GPU figures)."""
    proc = module("bench.gpu", "--json", "--device", "cpu", "--config", "no-such-preset",
                  "--parts", "train,ort_frames", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    train = report["parts"]["train"]
    assert train["status"] == "failed" and "no-such-preset" in train["reason"]
    assert report["parts"]["ort_frames"] == {"status": "skipped",
                                             "reason": "no bundle: not in --parts"}
    assert report["parts"]["streams"]["status"] == "skipped"
    assert any(line.startswith("train: failed: ") for line in report["not_measured"])
    assert report["figures"]["train_examples_per_s"] is None
