"""``avstream serve`` config files: what a good one gives, and one line per bad entry (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cli_run import avstream, bundle_classes

from avstream.errors import EXIT_USAGE, AvstreamError
from avstream.serve.config import (
    DEFAULT_MAX_BATCH,
    load_serve_config,
    parse_serve_config,
)

REPO = Path(__file__).resolve().parents[1]


def parse(tmp_path: Path, text: str):
    path = tmp_path / "serve.toml"
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "out").mkdir(exist_ok=True)  # an output's folder must exist (checked at parse)
    return parse_serve_config(path, tomllib.loads(text))


GOOD = """
model = "bundle"
max_batch_wait_ms = 5
[defaults]
hop = 0.4
[streams.a]
file = "clip.mp4"
pace = "fast"
smoothing = "ema"
[streams.a.outputs]
jsonl = "out/a.jsonl"
[streams.cam]
camera = "3"
mic = "USB"
place = "node_b"
"""


def test_a_good_config_gives_each_stream_its_source_options_and_outputs(tmp_path: Path) -> None:
    c = parse(tmp_path, GOOD)
    assert c.model == tmp_path / "bundle"
    assert (c.batching.max_batch, c.batching.max_wait_ms) == (DEFAULT_MAX_BATCH, 5.0)
    a, cam = c.streams
    assert (a.name, a.file, a.pace, a.live) == ("a", tmp_path / "clip.mp4", "fast", False)
    assert a.pipeline.hop_ms == 400 and a.pipeline.smoothing.method == "ema"
    assert a.outputs.jsonl == str(tmp_path / "out" / "a.jsonl")
    assert (cam.camera, cam.mic, cam.place, cam.live) == (3, "USB", "node_b", True)
    assert cam.pipeline.hop_ms == 400 and cam.pipeline.smoothing.method == "mean"
    assert cam.outputs.jsonl is None


@pytest.mark.parametrize(("written", "read"), [("realtime", "realtime"), ("live", "realtime"),
                                               (None, "realtime"), ("fast", "fast")])
def test_pace_is_realtime_or_fast_and_live_is_read_as_realtime(
        tmp_path: Path, written: str | None, read: str) -> None:
    pace = "" if written is None else f'pace = "{written}"\n'
    (stream,) = parse(tmp_path, f'model = "b"\n[streams.x]\nfile = "clip.mp4"\n{pace}').streams
    assert stream.pace == read


def test_the_shipped_example_is_valid(tmp_path: Path) -> None:
    text = (REPO / "examples" / "serve.toml").read_text()
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "street.mp4").write_bytes(b"")
    (tmp_path / "out").mkdir()
    c = parse_serve_config(tmp_path / "serve.toml", tomllib.loads(text),
                           env={"AVSTREAM_MQTT_PASSWORD": "pw"})
    assert [s.name for s in c.streams] == ["entrance", "platform", "yard", "archive"]
    entrance, platform, yard, _ = c.streams
    assert entrance.outputs.jsonl == str(tmp_path / "out" / "entrance.jsonl")
    assert entrance.outputs.mqtt == "mqtt://avstream:pw@127.0.0.1:1883"
    assert (platform.mic, platform.camera) == ("camera", "rtsp://10.0.0.21:554/stream1")
    assert (yard.video_delay_s, yard.outputs.jsonl) == (1.2, str(tmp_path / "out" / "yard-camera.jsonl"))


@pytest.mark.parametrize(("text", "entry", "expected"), [
    ('model = "b"\n[streams.x]\ncamera = 0\ncolour = 1\n', "streams.x.colour", "one of"),
    ('model = "b"\n[streams.x]\n', "streams.x", "either file = PATH, or camera and/or mic"),
    ('model = "b"\n[streams.x]\nfile = "clip.mp4"\ncamera = 1\n', "streams.x", "either file"),
    ('model = "b"\n[streams.x]\nfile = "missing.mp4"\n', "streams.x.file", "a media file"),
    ('model = "b"\n[streams.x]\nfile = "clip.mp4"\npace = "slow"\n', "streams.x.pace", "realtime, fast"),
    ('model = "b"\n[streams.x]\ncamera = true\n', "streams.x.camera", "a device index"),
    ('model = "b"\n[streams.x]\ncamera = 0\nhop = 0.0001\n', "streams.x", "hop"),
    ('model = "b"\n[streams.x]\ncamera = 0\nsmoothing = "median"\n', "streams.x", "mean"),
    ('model = "b"\n[streams.x]\ncamera = 0\n[streams.x.outputs]\nsmtp = "a"\n',
     "streams.x.outputs.smtp", "one of"),
    ('model = "b"\nmax_batch = 0\n[streams.x]\ncamera = 0\n', "max_batch", ">= 1"),
    ('[streams.x]\ncamera = 0\n', "model", "bundle directory"),
    ('model = "b"\n', "streams", "one [streams.NAME] table"),
    ('model = "b"\n[defaults]\nhold = "two"\n[streams.x]\ncamera = 0\n', "defaults.hold", "a number"),
    ('model = "b"\nclasses = "kitchen"\n[streams.x]\ncamera = 0\n', "classes",
     "a non-empty list of class names"),
    ('model = "b"\nclasses = []\n[streams.x]\ncamera = 0\n', "classes", "a non-empty list"),
    ('model = "b"\n[streams.x]\ncamera = 0\nclasses = ["a", "b", "a"]\n', "streams.x.classes",
     "each class once"),
])
def test_a_bad_entry_is_one_line_naming_it(tmp_path: Path, text: str, entry: str,
                                           expected: str) -> None:
    with pytest.raises(AvstreamError) as e:
        parse(tmp_path, text)
    message = str(e.value)
    assert "\n" not in message
    assert f": {entry}" in message and expected in message, message


def test_serve_with_a_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "serve.toml"
    cfg.write_text('model = "b"\n[streams.lobby]\ncamera = 0\nmic = [1]\n')
    r = avstream("serve", str(cfg), timeout=60)
    assert r.returncode == EXIT_USAGE
    assert r.stderr.strip().splitlines() == [
        f"avstream: error: {cfg}: streams.lobby.mic: [1]; expected a device index or a "
        f"name/URL string"]
    bad_toml = tmp_path / "broken.toml"
    bad_toml.write_text("model = \n")
    r = avstream("serve", str(bad_toml), timeout=60)
    assert r.returncode == EXIT_USAGE and len(r.stderr.strip().splitlines()) == 1
    assert "is not valid TOML" in r.stderr


@pytest.mark.parametrize("command", ["serve", "batch"])
def test_ray_without_ray_installed_says_what_to_install(tmp_path: Path, command: str) -> None:
    cfg = tmp_path / "serve.toml"
    (tmp_path / "clip.mp4").write_bytes(b"")
    cfg.write_text('model = "b"\n[streams.x]\nfile = "clip.mp4"\n')
    args = ([str(cfg)] if command == "serve" else
            [str(tmp_path / "clip.mp4"), "--model", str(tmp_path), "--out", str(tmp_path / "o")])
    code = ("import sys; sys.modules['ray'] = None; from avstream.cli import main; "
            f"sys.argv = ['avstream', {command!r}, *{args!r}, '--ray']; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == EXIT_USAGE, r.stderr
    assert 'pip install -e ".[cluster]"' in r.stderr and "Traceback" not in r.stderr


def test_load_names_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(AvstreamError, match="cannot be read"):
        load_serve_config(tmp_path / "none.toml")


def test_a_bare_ray_option_means_a_local_instance_and_an_address_is_checked() -> None:
    from avstream.cli import bare_option
    from avstream.cluster import LOCAL, check_address

    assert bare_option(["avstream", "serve", "c.toml", "--ray"], "--ray", LOCAL)[-1] == "--ray=local"
    assert bare_option(["x", "--ray", "--workers", "2"], "--ray", LOCAL)[1] == "--ray=local"
    assert bare_option(["x", "--ray", "auto"], "--ray", LOCAL) == ["x", "--ray", "auto"]
    for ok in ("auto", "local", "10.0.0.5:6379", "ray://head.lan:10001"):
        assert check_address(ok) == ok
    with pytest.raises(AvstreamError, match="--ray=ADDRESS, or --ray after the inputs"):
        check_address("recordings/")


def test_classes_at_the_top_reach_every_stream_and_a_streams_own_override_them(
        tmp_path: Path) -> None:
    c = parse(tmp_path, 'model = "b"\nclasses = ["kitchen", "office"]\n[streams.a]\ncamera = 0\n'
                        '[streams.b]\ncamera = 1\nclasses = ["car", "garage"]\n')
    assert c.classes == ("kitchen", "office")
    assert [s.classes for s in c.streams] == [("kitchen", "office"), ("car", "garage")]
    assert parse(tmp_path, 'model = "b"\n[streams.a]\ncamera = 0\n').streams[0].classes is None


def test_serve_refuses_a_bundle_whose_classes_differ_from_what_a_stream_expects(
        tmp_path: Path, trained_bundle: Path, av_file: Path) -> None:
    """Before any stream starts, with --check and without: one line naming the stream, the
    bundle, the classes it lacks and those nobody expects; a stream whose classes match (in any
    order) passes."""
    have = bundle_classes(trained_bundle)
    site = ["kitchen", "office", *have[:8]]  # lacks two, and has have[8:] that nobody expects
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'model = "{trained_bundle}"\nclasses = {json.dumps(site)}\n'
                   f'[streams.lobby]\nfile = "{av_file}"\n'
                   f'[streams.hall]\nfile = "{av_file}"\nclasses = {json.dumps(have[::-1])}\n')
    for check in ([], ["--check"]):
        r = avstream("serve", str(cfg), *check, timeout=120)
        assert r.returncode == EXIT_USAGE, r.stderr
        assert r.stderr.strip().splitlines() == [
            f"avstream: error: {cfg}: streams.lobby: bundle {trained_bundle} does not have the "
            f"classes the stream expects: missing kitchen, office; unexpected {have[8]}, "
            f"{have[9]}; expected a bundle with exactly the classes {', '.join(site)} (export "
            f"one trained on them, or correct classes)"], r.stderr
        assert r.stdout == ""  # nothing started, nothing declared valid
    cfg.write_text(f'model = "{trained_bundle}"\nclasses = {json.dumps(sorted(have))}\n'
                   f'[streams.lobby]\nfile = "{av_file}"\n')
    r = avstream("serve", str(cfg), "--check", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "is valid: 1 stream(s) (lobby)" in r.stdout
