"""``avstream serve`` in one process: records per stream equal to single replays (fast), requests
batched across streams, and a stream whose camera dies leaves the others running."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from cli_run import avstream
from live_env import camera_url, free_udp_port, kill_group, require_camera_stack, serve_camera
from streams_env import (  # noqa: F401
    assert_same_records,
    file_stream,
    read_records,
    replay_fast,
    three_streams,
    write_config,
)

from avstream.errors import EXIT_OK, EXIT_USAGE
from avstream.serve.config import load_serve_config
from avstream.serve.local import serve_local

SERVE_TIMEOUT_S = 180
CAMERA_KILL_AFTER_S = 3.0
CAMERA_RUN_S = 12.0
"""The whole camera test: the file streams (6 s at live pace) end well within this."""


def test_three_file_streams_give_the_records_of_three_replays_batched(
        three_streams: list[Path], tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: F811
    names = ["north", "south", "west"]
    cfg = write_config(tmp_path / "serve.toml", tiny_bundle,
                       {n: file_stream(m) for n, m in zip(names, three_streams, strict=True)})
    report = serve_local(load_serve_config(cfg), threading.Event())
    assert [o.error for o in report.outcomes] == [None] * 3
    assert [o.stopped for o in report.outcomes] == ["end of stream"] * 3
    for name, media in zip(names, three_streams, strict=True):
        lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        assert {json.loads(line)["stream"] for line in lines} == {name}
        assert next(iter(json.loads(lines[0]))) == "stream"
        assert_same_records(read_records(tmp_path / f"{name}.jsonl"),
                            replay_fast(media, tiny_bundle, tmp_path / f"{name}.replay.jsonl"))
    b = report.batching
    assert b is not None and b.largest >= 2 and b.mean_size() > 1.0, b


def test_serve_command_prints_a_line_per_stream_and_exits_2_for_a_bad_file(
        three_streams: list[Path], tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: F811
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(three_streams[0].read_bytes()[:3000])
    cfg = write_config(tmp_path / "serve.toml", tiny_bundle,
                       {"good": file_stream(three_streams[1]), "bad": file_stream(broken)})
    r = avstream("serve", str(cfg), timeout=SERVE_TIMEOUT_S)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "Traceback" not in r.stderr
    assert "avstream: good: " in r.stderr and "end of stream" in r.stderr
    assert "avstream: bad: 0 records" in r.stderr and "broken.mp4" in r.stderr
    assert len(read_records(tmp_path / "good.jsonl")) > 20
    good_only = write_config(tmp_path / "ok.toml", tiny_bundle,
                             {"good": file_stream(three_streams[1])})
    r = avstream("serve", str(good_only), timeout=SERVE_TIMEOUT_S)
    assert r.returncode == EXIT_OK, r.stderr


def test_a_camera_stream_killed_mid_run_does_not_stop_the_others(
        three_streams: list[Path], tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: F811
    require_camera_stack()
    port = free_udp_port()
    camera = serve_camera(three_streams[2], port, max_seconds=CAMERA_RUN_S)
    try:
        cfg = write_config(tmp_path / "serve.toml", tiny_bundle, {
            "a": file_stream(three_streams[0], "live"),
            "b": file_stream(three_streams[1], "live"),
            "cam": f'camera = "{camera_url(port)}"',
        })
        stop = threading.Event()
        killed_at: list[float] = []

        def kill_then_stop() -> None:
            time.sleep(CAMERA_KILL_AFTER_S)
            kill_group(camera)
            killed_at.append(time.monotonic())
            time.sleep(CAMERA_RUN_S - CAMERA_KILL_AFTER_S)
            stop.set()

        threading.Thread(target=kill_then_stop, daemon=True).start()
        t0 = time.monotonic()
        report = serve_local(load_serve_config(cfg), stop)
    finally:
        kill_group(camera)
    outcomes = {o.name: o for o in report.outcomes}
    assert time.monotonic() - t0 < CAMERA_RUN_S + 30
    for name in ("a", "b"):  # the files played to their end while the camera was gone
        assert outcomes[name].stopped == "end of stream", outcomes[name]
        records = read_records(tmp_path / f"{name}.jsonl")
        assert records[-1]["t"] >= 5.8
        assert len(records) >= 20
    cam = read_records(tmp_path / "cam.jsonl")
    assert cam, "the camera stream gave no record before it was killed"
    assert {tuple(r["modalities"]) for r in cam} == {("video",)}
    assert outcomes["cam"].stopped in ("stop request", "end of stream", "error")
