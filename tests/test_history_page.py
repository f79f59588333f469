"""The status page with a history, in real Chromium (Playwright): the last hours drawn as a scene
band and a confidence line in clock time, kept across reloads, "token required" on a 401, a
reconnect after the run's end and a server restart, and text for a screen reader."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
import urllib.request
from pathlib import Path

import pytest
from net_env import CLASSES, artifacts_dir, chromium, hop_record, require_python, run_info
from test_history import summary, write_hours

from avstream.outputs.history_query import read_history
from avstream.outputs.http import HttpConfig, HttpSink
from avstream.outputs.stats import OutputStats

LOOPBACK = "127.0.0.1"
WAIT_MS = 45_000


def serve(db: Path | None, port: int = 0, token: str | None = None) -> HttpSink:
    require_python("prometheus_client", "http")
    sink = HttpSink(HttpConfig(LOOPBACK, port, "lobby", token=token,
                               history=None if db is None else str(db)), OutputStats())
    sink.start(run_info())
    return sink


def live_hops(sink: HttpSink, labels: list[str]) -> None:
    for k, label in enumerate(labels):
        sink.hop(dataclasses.replace(hop_record(k, label), wall_time=time.time()))


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_history_endpoint_answers_json(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    write_hours(db, 3.0, stream="lobby")
    write_hours(db, 1.0, stream="yard")
    sink = serve(db)
    try:
        code, body = get_json(f"{sink.url}history?since=65m")
        bad, refused = get_json(f"{sink.url}history?since=soon")
    finally:
        sink.end(summary())
    assert code == 200 and body["stream"] == "lobby"
    assert {s["stream"] for s in body["segments"]} == {"lobby"}
    assert [s["label"] for s in body["segments"]] == ["park", "metro", "tram"]
    assert 65 <= len(body["minutes"]) <= 70  # a row per minute and label (two at a change)
    assert bad == 400
    assert refused["error"].startswith("since 'soon': expected a duration back from now")
    without = serve(None)
    try:
        code, body = get_json(f"{without.url}history")
    finally:
        without.end(summary())
    assert code == 404 and "--history PATH" in body["error"]


@pytest.mark.live
def test_page_draws_hours_keeps_them_and_reconnects(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    write_hours(db, 5.0, stream="lobby", scene_s=2400.0,  # confidence dips at each change
                confidence=lambda t: 0.95 - 0.35 * math.exp(-((t % 2400.0) / 400.0)))
    sink = serve(db)
    port = sink.port
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(sink.url)
        page.wait_for_function("document.getElementById('conn').textContent === 'live'",
                               timeout=WAIT_MS)
        live_hops(sink, ["metro"] * 5)
        page.wait_for_function("document.getElementById('label').textContent === 'metro'",
                               timeout=WAIT_MS)
        bands = page.locator("#svg rect").count()
        rows = page.locator("#timeline div").count()
        desc = page.text_content("#chart-desc") or ""
        line = page.get_attribute("#svg polyline", "points") or ""
        shot = artifacts_dir(tmp_path) / "status-page-history.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the status page with 5 hours of history: {shot}")

        page.reload()  # the history comes back from /history, not from the page's memory
        page.wait_for_function(f"document.querySelectorAll('#timeline div').length >= {rows - 1}",
                               timeout=WAIT_MS)
        # The reloaded page must be following /events before the run ends, or it never hears
        # the end (it would then say "disconnected", rightly).
        page.wait_for_function("document.getElementById('conn').textContent === 'live'",
                               timeout=WAIT_MS)

        sink.end(summary())  # the run ends and the server stops ...
        page.wait_for_function(
            "document.getElementById('conn').textContent.startsWith('run ended')", timeout=WAIT_MS)
        restarted = serve(db, port)  # ... and a new run starts on the same port
        try:
            page.wait_for_function("document.getElementById('conn').textContent === 'live'",
                                   timeout=WAIT_MS)
            live_hops(restarted, ["tram"] * 3)
            page.wait_for_function("document.getElementById('label').textContent === 'tram'",
                                   timeout=WAIT_MS)
        finally:
            restarted.end(summary())
        aria = page.get_attribute("#label", "aria-live")
        role = page.get_attribute("#svg", "role")
    # 5 h at 40 min per scene: 8 periods within the 6 h shown, plus the live one
    assert bands >= 8 and rows >= 8, (bands, rows)
    assert len(line.split()) >= 5 * 60 - 2  # one point per minute
    assert desc.startswith(f"{bands} periods; the latest: ")
    assert re.search(r"park from \d\d:\d\d for 40m 00s \(mean confidence (8|9)\d%\)", desc), desc
    assert set(CLASSES) & set(desc.split()) == set(CLASSES)
    assert (aria, role) == ("polite", "img")


@pytest.mark.live
def test_page_says_token_required_on_401(tmp_path: Path) -> None:
    sink = serve(None, token="s3cret")
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(sink.url + "?access_token=s3cret")
            page.wait_for_function("document.getElementById('conn').textContent === 'live'",
                                   timeout=WAIT_MS)
            wrong = browser.new_page()
            wrong.goto(sink.url + "?access_token=wrong")
            wrong.wait_for_function(
                "document.getElementById('conn').textContent.startsWith('token required')",
                timeout=WAIT_MS)
            time.sleep(1.0)  # it does not turn into "retrying"
            text = wrong.text_content("#conn")
    finally:
        sink.end(summary())
    assert text == "token required: open this page with ?access_token=TOKEN"


def test_outputs_give_the_page_the_history_file(tmp_path: Path) -> None:
    """``--history`` with ``--http``: the server answers /history from the run's own file."""
    require_python("prometheus_client", "http")
    from avstream.driver import Outputs

    db = tmp_path / "h.db"
    sinks, _ = Outputs(view=False, http=f"{LOOPBACK}:0", history=str(db), name="lobby").sinks()
    for sink in sinks:
        sink.start(run_info())
    live_hops(sinks[0], ["park", "park", "metro"])  # type: ignore[arg-type]
    for sink in sinks:
        sink.end(summary())  # the history's rows are committed by the time end() returns
    http = next(s for s in sinks if isinstance(s, HttpSink))
    assert [type(s).__name__ for s in sinks][:2] == ["HistorySink", "HttpSink"]
    assert http.config.history == str(db)
    assert [s.label for s in read_history(db, time.time() - 60).segments] == ["park", "metro"]
