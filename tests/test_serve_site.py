"""A site in one file: `[outputs]` for every stream, `${VAR}` for secrets, every mistake at once
by key path (`avstream serve CONFIG --check`), and a published JSON Schema that matches what the
reader accepts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from cli_run import REPO, avstream

from avstream import schemas
from avstream.serve.config import (
    SOURCE_KEYS,
    TOP_KEYS,
    ConfigErrors,
    load_serve_config,
)
from avstream.serve.outputs_config import OUTPUT_KEYS, SITE_OUTPUT_KEYS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def site(tmp_path: Path, bundle: Path, media: Path) -> str:
    (tmp_path / "logs").mkdir(exist_ok=True)
    return f'''
model = "{bundle}"
[outputs]
mqtt = "mqtt://avstream:${{SITE_SECRET}}@127.0.0.1:1883/site"
jsonl_dir = "logs"
[streams.gate]
file = "{media}"
[streams.yard]
file = "{media}"
[streams.yard.outputs]
jsonl = "yard-own.jsonl"
mqtt = "mqtt://127.0.0.1:1884"
'''


def test_site_outputs_reach_every_stream_and_a_stream_overrides_them(
        tmp_path: Path, tiny_bundle: Path, av_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITE_SECRET", "s3cret")
    cfg = load_serve_config(write(tmp_path, site(tmp_path, tiny_bundle, av_file)))
    gate, yard = cfg.streams
    assert gate.outputs.jsonl == str(tmp_path / "logs" / "gate.jsonl")
    assert gate.outputs.mqtt == "mqtt://avstream:s3cret@127.0.0.1:1883/site"
    assert yard.outputs.jsonl == str(tmp_path / "yard-own.jsonl")
    assert yard.outputs.mqtt == "mqtt://127.0.0.1:1884"
    assert (gate.outputs.name, yard.outputs.name) == ("gate", "yard")


def test_every_mistake_at_once_with_its_key_path(tmp_path: Path, tiny_bundle: Path,
                                                 av_file: Path) -> None:
    text = f'''
model = "{tiny_bundle}"
threads = -1
[outputs]
jsonl_dir = "no-such-folder"
[streams.a]
file = "{av_file}"
pace = "sometimes"
[streams.b]
camera = "udp://127.0.0.1:9"
mic = "camera"
video_delay = 60
[streams.c]
camera = 0
mic = "camera"
[streams.d]
file = "{av_file}"
[streams.d.outputs]
http_token = "${{NOT_SET_ANYWHERE}}"
'''
    with pytest.raises(ConfigErrors) as caught:
        load_serve_config(write(tmp_path, text))
    joined = "\n".join(caught.value.errors)
    assert "threads: -1" in joined
    assert "outputs.jsonl_dir:" in joined
    assert "streams.d.outputs.http_token: ${NOT_SET_ANYWHERE} is not set" in joined
    # the streams are checked once [outputs] is right: fix it and each stream's mistake shows
    (tmp_path / "no-such-folder").mkdir()
    with pytest.raises(ConfigErrors) as caught:
        load_serve_config(write(tmp_path, text))
    errors = caught.value.errors
    assert any("streams.a.pace: 'sometimes'" in e for e in errors)
    assert any("streams.b.video_delay: 60" in e for e in errors)
    assert any("streams.c.mic:" in e and "camera stream URL" in e for e in errors)
    assert any("streams.d.outputs.http_token" in e for e in errors)
    assert all("--" not in e.split(":", 2)[1] for e in errors)  # TOML keys, not CLI flags


def test_check_command_exits_0_when_valid_and_2_listing_every_mistake(
        tmp_path: Path, tiny_bundle: Path, av_file: Path) -> None:
    good = write(tmp_path, f'model = "{tiny_bundle}"\n[streams.a]\nfile = "{av_file}"\n')
    done = avstream("serve", str(good), "--check")
    assert done.returncode == 0, done.stderr
    assert "is valid: 1 stream(s) (a)" in done.stdout and "checksums verified" in done.stdout
    bad = write(tmp_path, f'model = "{tiny_bundle}"\nthreads = "two"\n[streams.a]\nfile = "nope.mp4"\n')
    done = avstream("serve", str(bad), "--check")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert any("threads: 'two'" in line for line in lines)
    assert any("streams.a.file:" in line and "does not exist" in line for line in lines)
    assert "Traceback" not in done.stderr


def test_site_http_is_one_server_for_the_process_not_each_streams(
        tmp_path: Path, tiny_bundle: Path, av_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITE_TOKEN", "t0ken")
    text = f'''
model = "{tiny_bundle}"
[outputs]
http = "0.0.0.0:8080"
http_token = "${{SITE_TOKEN}}"
[streams.a]
file = "{av_file}"
[streams.b]
file = "{av_file}"
[streams.b.outputs]
http = "127.0.0.1:8081"
'''
    cfg = load_serve_config(write(tmp_path, text))
    assert cfg.http is not None
    assert (cfg.http.host, cfg.http.port, cfg.http.token) == ("0.0.0.0", 8080, "t0ken")
    a, b = cfg.streams
    assert (a.outputs.http, a.outputs.http_token) == (None, None)  # not inherited
    assert b.outputs.http == "127.0.0.1:8081"  # a stream's own server, as --http


@pytest.mark.parametrize(("outputs", "expected"), [
    ('http = "0.0.0.0:8080"', "outputs.http 0.0.0.0:8080 listens on 0.0.0.0, which is not a "
                              "loopback address; expected http_token TOKEN as well"),
    ('http_token = "t"', "outputs.http_token: given without outputs.http"),
    ('http = "80800"', "outputs.http 80800: port '80800'"),
])
def test_site_http_mistakes_name_the_key(tmp_path: Path, tiny_bundle: Path, av_file: Path,
                                         outputs: str, expected: str) -> None:
    text = f'model = "{tiny_bundle}"\n[outputs]\n{outputs}\n[streams.a]\nfile = "{av_file}"\n'
    with pytest.raises(ConfigErrors) as caught:
        load_serve_config(write(tmp_path, text))
    assert any(expected in e for e in caught.value.errors), caught.value.errors


def test_site_http_is_refused_with_ray_in_one_line(tmp_path: Path, tiny_bundle: Path,
                                                   av_file: Path) -> None:
    cfg = write(tmp_path, f'model = "{tiny_bundle}"\n[outputs]\nhttp = "0"\n'
                          f'[streams.a]\nfile = "{av_file}"\n')
    done = avstream("serve", str(cfg), "--ray", "local")
    assert done.returncode == 2, done.stderr
    assert "outputs.http (one server for every stream) runs without --ray" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_published_schema_matches_the_reader_and_the_example() -> None:
    schema = schemas.load(schemas.SERVE)
    assert set(schema["properties"]) == set(TOP_KEYS)
    stream = schema["$defs"]["stream"]["properties"]
    assert set(SOURCE_KEYS) <= set(stream)
    assert set(stream["outputs"]["properties"]) == set(OUTPUT_KEYS)
    assert set(schema["properties"]["outputs"]["properties"]) == set(SITE_OUTPUT_KEYS)
    validator = schemas.validator(schemas.SERVE)
    example = tomllib.loads((REPO / "examples" / "serve.toml").read_text())
    assert not [e.message for e in validator.iter_errors(example)]
    assert example["outputs"]["http"]  # the example shows the site's one page
    example["streams"]["entrance"]["cameras"] = 1
    assert [e.message for e in validator.iter_errors(example)]
    assert [e.message for e in validator.iter_errors({"model": "m", "streams": {"a": {"file": "f"}},
                                                      "outputs": {"http_token": "t"}})]
