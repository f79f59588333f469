"""One HTTP server for every stream of ``avstream serve`` (``[outputs] http``): a real serve
process on two live-paced file streams (the suite's multi-scene recording, the trained bundle);
``/`` in real Chromium (Playwright) lists both with their labels, ``/streams/a/`` is stream a's
own page, ``/streams/a/status`` is a's, one ``/metrics`` (prometheus_client's parser) has both
streams under their ``stream`` label, and a wrong token gets 401."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import Child, start
from net_env import artifacts_dir, chromium, require_python

from avstream.errors import EXIT_OK

TOKEN = "s3cret"
START_S = 120.0
"""Until both streams have a label (the model loads, the first windows run) on 2 busy cores."""
STOP_S = 30.0
RUN_BOUND_S = 600.0
"""The serve process is killed after this whatever happens."""
WAIT_MS = 30_000
SITE_URL = re.compile(r"avstream: http: (http://\S+/) \(loopback only")


def config(path: Path, bundle: Path, media: Path) -> Path:
    path.write_text(f'''
model = "{bundle}"
[defaults]
hop = 0.5
[outputs]
http = "0"
http_token = "{TOKEN}"
[streams.a]
file = "{media}"
[streams.b]
file = "{media}"
''')
    return path


@contextlib.contextmanager
def serving(cfg: Path) -> Iterator[tuple[str, Child]]:
    """``avstream serve cfg`` running; yields the site's URL (from its start-up line) and the
    process. Stopped with SIGTERM (as systemd does) at the end: its exit code is then
    ``server.proc.returncode``."""
    server = start("serve", str(cfg), workdir=cfg.parent, bound_s=RUN_BOUND_S, name="serve")
    try:
        yield server.search_stderr(SITE_URL.pattern, START_S).group(1), server
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):  # then killed: the test fails
            server.stop(signal.SIGTERM, STOP_S)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def with_token(url: str, token: str = TOKEN) -> str:
    return f"{url}?access_token={token}"


def labelled(url: str) -> dict[str, dict]:
    """/streams once every stream has a label (the first windows ran)."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        code, body = get(with_token(f"{url}streams"))
        assert code == 200, body
        rows = {s["stream"]: s for s in json.loads(body)["streams"]}
        if set(rows) == {"a", "b"} and all(s["label"] for s in rows.values()):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"no label on every stream within {START_S:.0f} s: {rows}")


@pytest.mark.live
def test_one_server_shows_every_stream_with_one_metrics(
        synth_stream: tuple[Path, Path], trained_bundle: Path, tmp_path: Path) -> None:
    require_python("prometheus_client", "http")
    from prometheus_client.parser import text_string_to_metric_families

    media, _ = synth_stream
    cfg = config(tmp_path / "site.toml", trained_bundle, media)
    with serving(cfg) as (url, server):
        rows = labelled(url)
        assert {s["sources"]["camera"] and s["sources"]["microphone"] for s in rows.values()} \
            == {True}
        code, body = get(with_token(f"{url}streams/a/status"))
        status = json.loads(body)
        assert code == 200 and status["stream"] == "a" and status["running"]
        assert status["label"] and status["label_since"] <= status["wall_time"]

        code, body = get(with_token(f"{url}metrics"))
        text = body.decode()
        assert code == 200
        assert text.count("# TYPE avstream_hops_total counter") == 1  # one family, two streams
        hops = {s.labels["stream"]: s.value for f in text_string_to_metric_families(text)
                for s in f.samples if s.name == "avstream_hops_total"}
        assert set(hops) == {"a", "b"} and min(hops.values()) >= 1, hops
        assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text

        for path in ("", "metrics", "streams", "streams/a/status", "streams/b/events"):
            assert get(with_token(f"{url}{path}", "wrong"))[0] == 401, path
            assert get(f"{url}{path}")[0] == 401, path
        assert get(with_token(f"{url}streams/nope/status"))[0] == 404

        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1100, "height": 420})
            page.goto(with_token(url))
            page.wait_for_function(
                "document.querySelectorAll('#streams tr').length === 2 && "
                "[...document.querySelectorAll('#streams td.label')]"
                ".every(td => td.textContent !== '-')", timeout=WAIT_MS)
            shown = {tr.get_attribute("data-stream"): tr.locator("td.label").text_content()
                     for tr in page.locator("#streams tr").all()}
            shot = artifacts_dir(tmp_path) / "site-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert set(shown) == {"a", "b"}
            now = labelled(url)
            assert all(shown[n] in (rows[n]["label"], now[n]["label"]) for n in shown), shown
            page.click("a[href^='streams/a/']")  # the stream's own page, token carried on
            page.wait_for_function("document.getElementById('conn').textContent === 'live'",
                                   timeout=WAIT_MS)
            assert page.url == with_token(f"{url}streams/a/")
            assert page.text_content("#label") in {s["label"] for s in labelled(url).values()}
        assert shot.stat().st_size > 10_000
        if os.environ.get("AVSTREAM_SITE_SCREENSHOT"):  # refresh docs/img/site-page.png
            shutil.copy(shot, os.environ["AVSTREAM_SITE_SCREENSHOT"])
    out = server.stderr_text()
    assert server.proc.returncode == EXIT_OK, out
    assert "avstream: a: " in out and "avstream: b: " in out
