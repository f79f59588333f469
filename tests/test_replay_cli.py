"""``avstream replay`` as a user runs it: a child process, its exit code, its streams and files.

Errors a user can make get one line and a documented exit code (README: exit codes); the run's
own output is the same from run to run apart from the clock fields.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from cli_run import start
from replay_helpers import cli, remux_keep, stable, write_media

RUN_BOUND_S = 120.0
"""Each background run is killed after this whatever happens."""


def test_fast_runs_are_identical_apart_from_clock_fields(tiny_bundle: Path, av_file: Path,
                                                         tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        path = tmp_path / f"run{i}.jsonl"
        r = cli("replay", str(av_file), "--model", str(tiny_bundle), "--fast", "--jsonl",
                str(path), "--no-view")
        assert r.returncode == 0, r.stderr
        outs.append([stable(line) for line in path.read_text().splitlines()])
    assert len(outs[0]) == 11
    assert outs[0] == outs[1]


def test_jsonl_to_stdout_and_summary_to_stderr(tiny_bundle: Path, av_file: Path) -> None:
    r = cli("replay", str(av_file), "--model", str(tiny_bundle), "--jsonl", "-")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 11 and all(json.loads(x)["t"] for x in lines)
    assert "summary: 11 windows" in r.stderr and "p99" in r.stderr and "timeline" in r.stderr


def test_sigterm_stops_cleanly_with_a_summary(tiny_bundle: Path, tmp_path: Path) -> None:
    clip = write_media(tmp_path / "long.mp4", seconds=8.0)
    run = start("replay", str(clip), "--model", str(tiny_bundle), "--realtime", "--jsonl", "-",
                workdir=tmp_path, bound_s=RUN_BOUND_S)
    try:
        assert run.wait_for_lines(1, RUN_BOUND_S), run.stderr_text()  # the pipeline is running
        assert json.loads(run.stdout_text().splitlines()[0])["t"] == 1.0
        code = run.stop(signal.SIGTERM, 60)
    finally:
        run.kill()
    out, err = run.stdout_text(), run.stderr_text()
    assert code == 0, err
    assert "ended by stop request" in err
    assert len(out.splitlines()) < 35  # it did not run to the end of the 8-s file



SLOW_MODEL_LOAD = ("import sys, time\n"
                   "import avstream.driver\n"
                   "real = avstream.driver.open_engine\n"
                   "def slow(*args, **kwargs):\n"
                   "    print('loading the model', file=sys.stderr, flush=True)\n"
                   "    time.sleep(3.0)\n"
                   "    return real(*args, **kwargs)\n"
                   "avstream.driver.open_engine = slow\n")
"""The model takes 3 s to load, and says when it starts (the test's cue to send the signal)."""


def test_sigterm_while_the_model_loads_exits_0_without_a_run(tiny_bundle: Path, av_file: Path,
                                                             tmp_path: Path) -> None:
    run = start("replay", str(av_file), "--model", str(tiny_bundle), "--fast", "--jsonl", "-",
                workdir=tmp_path, bound_s=RUN_BOUND_S, patch=SLOW_MODEL_LOAD)
    try:
        assert run.wait_for_stderr("loading the model\n", RUN_BOUND_S), run.stderr_text()
        assert run.stderr_text().startswith("loading the model\n"), run.stderr_text()
        code = run.stop(signal.SIGTERM, 60)
    finally:
        run.kill()
    out, err = run.stdout_text(), run.stderr_text()
    assert code == 0, err
    assert "avstream: stopped before the stream began; no windows" in err
    assert out == "" and "summary:" not in err  # no window ran

def assert_one_line_error(r: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("avstream: error:")]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_missing_file(tiny_bundle: Path, tmp_path: Path) -> None:
    r = cli("replay", str(tmp_path / "nope.mp4"), "--model", str(tiny_bundle))
    assert_one_line_error(r, 2, "nope.mp4", "does not exist")


def test_undecodable_file(tiny_bundle: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    r = cli("replay", str(junk), "--model", str(tiny_bundle))
    assert_one_line_error(r, 2, "junk.mp4")


def test_file_with_neither_audio_nor_video(tiny_bundle: Path, tmp_path: Path) -> None:
    subs = tmp_path / "only.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:02,000\nhello\n")
    r = cli("replay", str(subs), "--model", str(tiny_bundle))
    assert_one_line_error(r, 2, "only.srt", "neither an audio nor a video stream")


def test_pair_whose_audio_file_has_no_audio(tiny_bundle: Path, av_file: Path, tmp_path: Path) -> None:
    video_only = remux_keep(av_file, tmp_path / "v.mp4", "video")
    r = cli("replay", str(av_file), "--audio", str(video_only), "--model", str(tiny_bundle))
    assert_one_line_error(r, 2, "v.mp4", "no audio stream")


def test_bad_bundles(tiny_bundle: Path, av_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(cli("replay", str(av_file), "--model", str(empty)), 2, "manifest")
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for f in tiny_bundle.iterdir():
        (tampered / f.name).write_bytes(f.read_bytes())
    head = tampered / "head.onnx"
    head.write_bytes(head.read_bytes()[:-10])
    assert_one_line_error(cli("replay", str(av_file), "--model", str(tampered)), 2, "head.onnx")


def test_bad_options(tiny_bundle: Path, av_file: Path, tmp_path: Path) -> None:
    assert_one_line_error(cli("replay", str(av_file), "--model", str(tiny_bundle), "--hop", "3"),
                          2, "hop")
    assert_one_line_error(cli("replay", str(av_file), "--model", str(tiny_bundle), "--floor", "2"),
                          2, "floor")
    assert_one_line_error(cli("replay", str(av_file), "--model", str(tiny_bundle), "--jsonl",
                              str(tmp_path / "no" / "such" / "dir.jsonl")), 2, "--jsonl")


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                    reason="CUDA is available here")
def test_forced_provider_that_is_missing_exits_4(tiny_bundle: Path, av_file: Path) -> None:
    r = cli("replay", str(av_file), "--model", str(tiny_bundle), "--provider", "cuda")
    assert_one_line_error(r, 4, "CUDAExecutionProvider", "not available")
