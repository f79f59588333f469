"""``avstream live`` against real devices: a PulseAudio null sink as the microphone and an
ffmpeg UDP stream on loopback as the camera (tests/live_env.py), with the trained bundle.

The only timing checks are the behaviours the issue states, read off the stream timestamps
(``t``) of the JSON lines: audio-only within 2 s of the camera being killed, fused again after
it returns. Stream time maps to the test's clock through the origin the daemon prints
(``stream clock: t = CLOCK_MONOTONIC - X s``): both processes read the same CLOCK_MONOTONIC.
"""

from __future__ import annotations

import csv
import json
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_run import avstream
from live_env import (
    Daemon,
    PulseServer,
    camera_url,
    free_udp_port,
    kill_group,
    play,
    pulse_server,
    require_camera_stack,
    serve_camera,
    start_daemon,
    start_pulse,
    write_wav_from_media,
)

from avstream.errors import EXIT_DEVICE, EXIT_OK
from avstream.sources.live import AUDIO_RESYNC_S, AudioTimeline

# ALSA's pulse plugin device (libasound2-plugins), named explicitly: whether ALSA's "default"
# also routes to PulseAudio depends on the machine's ALSA configuration.
PULSE_DEVICE = "pulse"
FUSED_JSON = '"modalities":["audio","video"]'  # as the JSON lines spell it
VIDEO_ONLY_JSON = '"modalities":["video"]'
VIDEO_ONLY_WAIT_S = 10.0
# The microphone's reconnect backoff (<= 4 s) + an open + the first full window of new audio.
MIC_BACK_WITHIN_S = 15.0
AUDIO = ["audio"]
VIDEO = ["video"]
FUSED = ["audio", "video"]
ORIGIN_RE = re.compile(r"stream clock: t = CLOCK_MONOTONIC - ([0-9.]+) s")
DAEMON_START_S = 30.0  # model load + device open on a busy 2-core machine
DAEMON_BOUND_S = 90.0  # the daemon is SIGKILLed past this whatever happens

# The end-to-end run, in seconds of the recording being played (scenes change every 8 s).
KILL_CAMERA_AT = 9.5
RESTART_CAMERA_AT = 13.5
STOP_AT = 25.0
AUDIO_ONLY_WITHIN_S = 2.0  # the bound
FUSED_AGAIN_WITHIN_S = 10.0  # reconnect backoff (<= 4 s) + an open (<= 3 s) + the first window
# Windows this close to a scene change are not scored: the 1-s window straddles it and the
# smoother (1 s mean + 0.6 s hold) takes up to ~2 s to follow.
SCORE_BEFORE_CHANGE_S = 0.3
SCORE_AFTER_CHANGE_S = 2.5
MIN_WINDOWS_PER_SCENE = 5


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    scene: str


def read_truth(path: Path) -> list[Interval]:
    with path.open(newline="") as f:
        return [Interval(float(r["start_s"]), float(r["end_s"]), r["scene"])
                for r in csv.DictReader(f)]


def parse_jsonl(text: str) -> list[dict]:
    """Every line must be a complete JSON object, the last one included."""
    assert text, "no JSON lines at all"
    assert text.endswith("\n"), f"last line is incomplete: {text[-200:]!r}"
    return [json.loads(line) for line in text.splitlines()]


def daemon_origin(daemon: Daemon) -> float:
    if not daemon.wait_for_stderr("stream clock:", DAEMON_START_S):
        pytest.fail(f"avstream live did not start: rc={daemon.proc.poll()} "
                    f"stderr={daemon.stderr_text()[-3000:]}")
    m = ORIGIN_RE.search(daemon.stderr_text())
    assert m, daemon.stderr_text()
    return float(m.group(1))


def sleep_until(t_monotonic: float) -> None:
    left = t_monotonic - time.monotonic()
    if left > 0:
        time.sleep(left)


@pytest.fixture(scope="module")
def stream_wav(synth_stream: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp4, _ = synth_stream
    return write_wav_from_media(mp4, tmp_path_factory.mktemp("wav") / "stream.wav")


@pytest.mark.live
def test_live_follows_scenes_survives_the_camera_dying_and_stops_cleanly(
    pulse: PulseServer,
    trained_bundle: Path,
    synth_stream: tuple[Path, Path],
    stream_wav: Path,
    tmp_path: Path,
) -> None:
    require_camera_stack()
    mp4, truth_csv = synth_stream
    truth = read_truth(truth_csv)
    port = free_udp_port()
    procs = []
    daemon: Daemon | None = None
    try:
        t_play = time.monotonic()  # media time 0 of both the camera and the microphone
        procs.append(serve_camera(mp4, port, max_seconds=KILL_CAMERA_AT + 1))
        procs.append(play(pulse, stream_wav, max_seconds=STOP_AT + 10))
        daemon = start_daemon(
            ["--model", str(trained_bundle), "--mic", PULSE_DEVICE, "--camera", camera_url(port),
             "--jsonl", "-",
             "--no-view"],
            env=pulse.env, workdir=tmp_path, max_seconds=DAEMON_BOUND_S)
        origin = daemon_origin(daemon)

        sleep_until(t_play + KILL_CAMERA_AT)
        kill_group(procs[0])
        t_kill = time.monotonic() - origin

        sleep_until(t_play + RESTART_CAMERA_AT)
        restart_media = time.monotonic() - t_play
        procs.append(serve_camera(mp4, port, max_seconds=STOP_AT - restart_media + 5,
                                  start_s=restart_media))
        t_restart = time.monotonic() - origin

        sleep_until(t_play + STOP_AT)
        rc = daemon.stop(signal.SIGTERM)
    finally:
        for p in procs:
            kill_group(p)
        if daemon is not None:
            kill_group(daemon.proc)

    stderr = daemon.stderr_text()
    assert rc == EXIT_OK, stderr[-3000:]
    records = parse_jsonl(daemon.stdout_text())
    assert "summary:" in stderr and "stop request" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stderr.count("video lost") == 1, stderr[-3000:]  # one loss, said once
    model_rate = json.loads((trained_bundle / "manifest.json").read_text())["audio"]["sample_rate"]
    assert "microphone 'pulse'" in stderr, stderr[:2000]
    assert f"-> {model_rate} Hz" in stderr, stderr[:2000]  # the run says how audio is converted

    # Before the kill the output is fused.
    before = [r for r in records if r["t"] <= t_kill]
    assert any(r["modalities"] == FUSED for r in before), [r["modalities"] for r in before]

    # Audio-only within 2 s of the camera being killed, and nothing fused after that until
    # the camera is back.
    after_kill = [r for r in records if t_kill < r["t"] <= t_restart]
    first_audio_only = next((r for r in after_kill if r["modalities"] == AUDIO), None)
    assert first_audio_only is not None, [(r["t"], r["modalities"]) for r in after_kill]
    assert first_audio_only["t"] <= t_kill + AUDIO_ONLY_WITHIN_S, (first_audio_only["t"], t_kill)
    late = [r for r in after_kill if r["t"] > t_kill + AUDIO_ONLY_WITHIN_S]
    assert late and all(r["modalities"] == AUDIO for r in late), [
        (r["t"], r["modalities"]) for r in late]
    assert all(r["branch"] == "audio" for r in late)

    # Fused again once the stream is back.
    back = [r for r in records if r["t"] > t_restart and r["modalities"] == FUSED]
    assert back, [(r["t"], r["modalities"]) for r in records if r["t"] > t_restart]
    assert back[0]["t"] <= t_restart + FUSED_AGAIN_WITHIN_S, (back[0]["t"], t_restart)
    assert records[-1]["modalities"] == FUSED

    # Labels follow the scenes: for every scene with enough scored fused windows, the label
    # most often shown is that scene.
    offset = origin - t_play  # media time = stream time + offset
    changes = [iv.start for iv in truth[1:]]
    per_scene: dict[str, Counter] = {}
    for r in records:
        if r["modalities"] != FUSED:
            continue
        m = r["t"] + offset  # media time at the window's end
        if any(c - SCORE_BEFORE_CHANGE_S < m < c + SCORE_AFTER_CHANGE_S for c in changes):
            continue
        scene = next((iv.scene for iv in truth if iv.start <= m - 0.5 < iv.end), None)
        if scene is not None:
            per_scene.setdefault(scene, Counter())[r["label"]] += 1
    scored = {s: c for s, c in per_scene.items() if sum(c.values()) >= MIN_WINDOWS_PER_SCENE}
    assert len(scored) >= 2, per_scene
    for scene, counts in scored.items():
        assert counts.most_common(1)[0][0] == scene, (scene, counts)


@pytest.fixture
def own_pulse(tmp_path: Path) -> Iterator[PulseServer]:
    """A server this test may kill without disturbing the module's."""
    with pulse_server(tmp_path / "pulse") as server:
        yield server


@pytest.mark.live
def test_live_goes_video_only_when_the_microphone_dies_hears_again_when_it_returns(
    own_pulse: PulseServer,
    trained_bundle: Path,
    synth_stream: tuple[Path, Path],
    stream_wav: Path,
    tmp_path: Path,
) -> None:
    """The sound server is killed (the microphone fails), then started again on the same socket:
    the daemon goes video-only, reopens the same device by itself with its backoff, and fuses
    again; SIGINT then stops it cleanly."""
    require_camera_stack()
    mp4, _ = synth_stream
    port = free_udp_port()
    procs = []
    daemon: Daemon | None = None
    back: PulseServer | None = None
    try:
        procs.append(serve_camera(mp4, port, max_seconds=40))
        procs.append(play(own_pulse, stream_wav, max_seconds=40))
        daemon = start_daemon(
            ["--model", str(trained_bundle), "--mic", PULSE_DEVICE, "--camera", camera_url(port),
             "--jsonl", "-",
             "--no-view"],
            env=own_pulse.env, workdir=tmp_path, max_seconds=DAEMON_BOUND_S)
        origin = daemon_origin(daemon)
        assert daemon.wait_for_stdout(FUSED_JSON, DAEMON_START_S), daemon.stderr_text()[-3000:]
        own_pulse.kill()  # the sound server vanishes: the microphone fails
        t_kill = time.monotonic() - origin
        assert daemon.wait_for_stdout(VIDEO_ONLY_JSON, VIDEO_ONLY_WAIT_S), \
            daemon.stderr_text()[-3000:]
        time.sleep(1.0)  # a few video-only windows
        back = start_pulse(own_pulse.root)  # the same socket, a new server
        t_back = time.monotonic() - origin
        procs.append(play(back, stream_wav, max_seconds=30))
        assert daemon.wait_for_stderr("microphone delivers audio again", MIC_BACK_WITHIN_S), \
            daemon.stderr_text()[-3000:]
        fused_before = daemon.stdout_text().count(FUSED_JSON)
        assert daemon.wait_for_stdout_count(FUSED_JSON, fused_before + 1, MIC_BACK_WITHIN_S), \
            daemon.stderr_text()[-3000:]
        rc = daemon.stop(signal.SIGINT)
    finally:
        for p in procs:
            kill_group(p)
        if back is not None:
            back.kill()
        if daemon is not None:
            kill_group(daemon.proc)

    stderr = daemon.stderr_text()
    assert rc == EXIT_OK, stderr[-3000:]
    records = parse_jsonl(daemon.stdout_text())
    assert any(r["modalities"] == FUSED for r in records if r["t"] <= t_kill)
    video_only = [r for r in records if t_kill < r["t"] <= t_back and r["modalities"] == VIDEO]
    assert video_only, [(r["t"], r["modalities"]) for r in records]
    assert all(r["branch"] == "visual" for r in video_only)
    assert records[-1]["modalities"] == FUSED, [(r["t"], r["modalities"]) for r in records]
    assert "audio lost" in stderr, stderr[-3000:]  # said on stderr as well as in every line
    assert stderr.count("audio lost") == 1, stderr[-3000:]  # logged once
    assert "summary:" in stderr and "stop request" in stderr


@pytest.mark.live
def test_live_audio_only_labels_every_window_from_the_microphone(
    own_pulse: PulseServer, trained_bundle: Path, stream_wav: Path, tmp_path: Path,
) -> None:
    """`avstream live --no-camera`, as the README shows it, run to its end: every line is
    audio-only on the audio branch, and SIGTERM stops it with a summary (exit 0)."""
    procs = []
    daemon: Daemon | None = None
    try:
        procs.append(play(own_pulse, stream_wav, max_seconds=40))
        daemon = start_daemon(
            ["--model", str(trained_bundle), "--mic", PULSE_DEVICE, "--no-camera", "--jsonl", "-",
             "--no-view"],
            env=own_pulse.env, workdir=tmp_path, max_seconds=DAEMON_BOUND_S)
        assert daemon.wait_for_stdout_count('"modalities":["audio"]', 10, DAEMON_START_S), (
            daemon.stderr_text()[-3000:])
        rc = daemon.stop(signal.SIGTERM)
    finally:
        for p in procs:
            kill_group(p)
        if daemon is not None:
            kill_group(daemon.proc)
    stderr = daemon.stderr_text()
    assert rc == EXIT_OK, stderr[-3000:]
    records = parse_jsonl(daemon.stdout_text())
    assert len(records) >= 10
    assert all(r["modalities"] == AUDIO and r["branch"] == "audio" for r in records), records[:3]
    assert "summary:" in stderr and "stop request" in stderr, stderr[-3000:]


@pytest.mark.live
def test_live_exits_3_when_no_capture_device_works(trained_bundle: Path) -> None:
    require_camera_stack()
    port = free_udp_port()  # nothing is sent there
    done = avstream("live", "--model", str(trained_bundle), "--no-mic", "--camera",
                    camera_url(port), "--jsonl", "-", "--no-view", timeout=DAEMON_BOUND_S)
    assert done.returncode == EXIT_DEVICE, (done.returncode, done.stderr[-3000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("avstream: error:")]
    assert len(errors) == 1 and "no capture device works" in errors[0], done.stderr[-3000:]
    assert camera_url(port) in errors[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# ----------------------------------------------------------------- the audio clock (no devices)

RATE = 48_000
BLOCK = 480  # 10 ms


def test_audio_timeline_keeps_blocks_contiguous_under_callback_jitter() -> None:
    rng = np.random.default_rng(0)
    timeline = AudioTimeline()
    true_start = 5.0
    starts = []
    for _ in range(500):
        jitter = float(rng.uniform(0.0, 0.015))  # callbacks run late, never early
        starts.append(timeline.place(true_start + BLOCK / RATE + jitter, BLOCK, RATE))
        true_start += BLOCK / RATE
    steps = np.diff(starts)
    # Never a gap between blocks; only backward corrections as earlier stamps are seen, which
    # add up to no more than the first block's lateness (the pipeline's 20-ms continuity).
    corrections = BLOCK / RATE - steps
    assert np.all(corrections >= -1e-9)
    assert corrections.sum() <= 0.015 + 1e-9
    assert np.count_nonzero(corrections[100:] > 1e-9) < 10
    placed_end = starts[-1] + BLOCK / RATE
    assert 0.0 <= placed_end - true_start <= 0.001  # the anchor is the least-delayed stamp
    assert timeline.resyncs == 0


def test_audio_timeline_resyncs_on_a_real_gap() -> None:
    timeline = AudioTimeline()
    t = 1.0
    for _ in range(10):
        timeline.place(t + BLOCK / RATE, BLOCK, RATE)
        t += BLOCK / RATE
    expected_next = t
    t += 0.3  # the device lost 300 ms
    start = timeline.place(t + BLOCK / RATE, BLOCK, RATE)
    assert timeline.resyncs == 1
    assert start - expected_next > AUDIO_RESYNC_S
    assert abs(start - t) < 1e-9
