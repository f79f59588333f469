"""The network outputs on a real run: ``avstream replay --realtime`` of the multi-scene test
recording with ``--mqtt`` (a real Mosquitto, killed for 5 s in the middle) and ``--http``
(the page in headless Chromium, /metrics parsed by prometheus_client, and an /events client
that never reads). One run serves all the checks; it lasts as long as the recording (48 s).
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from cli_run import Child, avstream, start
from live_env import LOOPBACK
from net_env import Broker, Subscriber, artifacts_dir, chromium, mosquitto, require_python, retained

from avstream.errors import EXIT_USAGE

OUTAGE_S = 5.0
KILL_AFTER_S = 12.0
"""Seconds after the daemon came online: a few scene changes have been published by then."""
RUN_LIMIT_S = 150
POLL_S = 0.25


def start_replay(tmp_path: Path, *args: str) -> Child:
    return start("replay", *args, workdir=tmp_path, bound_s=RUN_LIMIT_S, name="replay")


def stalled_events_client(port: int) -> socket.socket:
    """Connects to /events and never reads (a tiny receive buffer fills at once)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((LOOPBACK, port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def parse_metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def output_counts(summary_text: str, output: str) -> dict[str, int]:
    m = re.search(rf"^  output {output}: (.*)$", summary_text, re.M)
    assert m, f"no 'output {output}' line in the summary:\n{summary_text}"
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def label_changes(records: list[dict]) -> list[dict]:
    return [r for i, r in enumerate(records) if i == 0 or r["label"] != records[i - 1]["label"]]


@pytest.mark.live
def test_replay_publishes_to_mqtt_and_the_page_follows_it(
        trained_bundle: Path, synth_stream: tuple[Path, Path], tmp_path: Path) -> None:
    require_python("prometheus_client", "http")
    mp4, _ = synth_stream
    jsonl = tmp_path / "hops.jsonl"
    with mosquitto(tmp_path / "broker") as broker, Subscriber(broker.port) as sub, chromium() as browser:
        run = start_replay(tmp_path, str(mp4), "--model", str(trained_bundle), "--realtime",
                           "--no-view", "--jsonl", str(jsonl), "--name", "e2e",
                           "--mqtt", f"{broker.url}/test", "--mqtt-hop-rate", "1",
                           "--http", f"{LOOPBACK}:0")
        try:
            url = run.search_stderr(r"avstream: http: (http://\S+/) \(loopback only; no token\)",
                                  60).group(1)
            port = int(url.rsplit(":", 1)[1].strip("/"))
            online = sub.wait_for("test/e2e/availability", "online", timeout_s=60)
            assert online is not None, run.stderr_text()[-3000:]
            stalled = stalled_events_client(port)
            page = browser.new_page(viewport={"width": 900, "height": 720})
            page.goto(url)
            seen, timeline = _watch(run, broker, page, url, online.at, tmp_path)
            rc = run.wait(60)
            stalled.close()
        finally:
            run.kill()
        final_retained = retained(broker.port, "test/e2e/state")
        discovery = retained(broker.port, "homeassistant/sensor/avstream_e2e/scene/config")

    stdout = run.stdout_text()
    assert rc == 0, run.stderr_text()[-3000:]
    assert "ended by end of stream" in stdout
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    changes = label_changes(records)
    assert len(changes) >= 3, "the recording moves through six scenes"

    # --- the page: its label followed the run, and ended on the last label
    page_labels = [label for _, label in seen]
    assert len(set(page_labels)) >= 3, page_labels
    assert set(page_labels) - {"-"} <= {r["label"] for r in records}
    assert page_labels[-1] == records[-1]["label"]
    assert timeline["bars"] == len(records[0]["probs"]) and timeline["rows"] >= 3

    # --- MQTT: the broker was gone for 5 s; the run did not wait, and counted what it dropped
    mqtt = output_counts(stdout, "mqtt")
    assert (mqtt["disconnects"], mqtt["connects"]) == (1, 2)
    assert mqtt["dropped"] >= OUTAGE_S - 1  # at least the 1-per-second hop records
    assert mqtt["dropped"] == mqtt["dropped_disconnected"] + mqtt["dropped_queue_full"]
    states = [json.loads(m.payload) for m in sub.on("test/e2e/state")]
    change_windows = {r["window"] for r in changes}
    assert {s["window"] for s in states} <= change_windows  # states only on label changes
    killed = timeline["killed_wall"]
    back = [m.wall for m in sub.on("test/e2e/availability") if m.payload == "online"][1]
    before = [r["window"] for r in changes if r["wall_time"] < killed - 1.0]
    assert [s["window"] for s in states if s["window"] in set(before)] == before  # one each
    after = [r["window"] for r in changes if r["wall_time"] > back + 0.5]
    assert set(after) <= {s["window"] for s in states}  # every change once reconnected
    assert final_retained is not None and final_retained.retain
    assert json.loads(final_retained.payload)["label"] == records[-1]["label"]
    assert discovery is not None and discovery.retain  # announced again to the new broker
    assert json.loads(discovery.payload)["state_topic"] == "test/e2e/state"
    avail = [m.payload for m in sub.on("test/e2e/availability")]
    assert avail[0] == "online" and avail[-1] == "offline" and avail.count("online") == 2

    # --- HTTP: the client that never read was cut off and counted; the run still ended on time
    http = output_counts(stdout, "http")
    print(f"summary: mqtt {mqtt}; http {http}")
    assert http["clients_dropped"] + http["dropped"] >= 1
    stream_s = records[-1]["t"] - records[0]["t"]
    wall = float(re.search(r"in ([0-9.]+) s wall", stdout).group(1))
    assert wall < stream_s + 15, stdout
    m = timeline["metrics"]
    assert m[("avstream_hops_total", (("stream", "e2e"),))] > 0
    assert sum(v for (name, labels), v in m.items() if name == "avstream_label") == 1
    assert m[("avstream_hop_latency_seconds_count", (("stage", "total"), ("stream", "e2e")))] > 0
    for reason in ("queue_full", "disconnected"):
        assert ("avstream_mqtt_messages_dropped_total", (("reason", reason), ("stream", "e2e"))) in m
    assert m[("avstream_source_up", (("source", "camera"), ("stream", "e2e")))] == 1


def _watch(run: Child, broker: Broker, page: object, url: str, online_at: float,
           tmp_path: Path) -> tuple[list[tuple[float, str]], dict]:
    """Follow the page's label until the run ends; kill the broker for OUTAGE_S on the way;
    read /metrics once; save a screenshot once three labels have been shown."""
    seen: list[tuple[float, str]] = []
    facts: dict = {}
    killed_at = None
    while run.proc.poll() is None:
        now = time.monotonic()
        label = page.text_content("#label")  # type: ignore[attr-defined]
        if label and (not seen or seen[-1][1] != label):
            seen.append((now, label))
        if killed_at is None and now - online_at > KILL_AFTER_S:
            broker.kill()
            killed_at, facts["killed_wall"] = now, time.time()
        if killed_at is not None and "restarted_wall" not in facts and now - killed_at >= OUTAGE_S:
            broker.start()
            facts["restarted_wall"] = time.time()
        if "metrics" not in facts and now - online_at > 8:
            facts["metrics"] = parse_metrics(f"{url}metrics")
        if "screenshot" not in facts and len({s for _, s in seen}) >= 3:
            shot = artifacts_dir(tmp_path) / "status-page.png"
            page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
            facts["screenshot"] = shot
            print(f"screenshot of the status page: {shot}")
        time.sleep(POLL_S)
    page.wait_for_function(  # type: ignore[attr-defined]
        "document.getElementById('conn').textContent.startsWith('run ended')", timeout=10_000)
    label = page.text_content("#label")  # type: ignore[attr-defined]
    if label and seen[-1][1] != label:
        seen.append((time.monotonic(), label))
    facts["bars"] = page.locator("#bars .track").count()  # type: ignore[attr-defined]
    facts["rows"] = page.locator("#timeline div").count()  # type: ignore[attr-defined]
    assert "screenshot" in facts, f"the page never showed three labels: {seen}"
    assert "restarted_wall" in facts, "the run ended before the broker came back"
    return seen, facts


def test_non_loopback_http_without_token_is_refused(trained_bundle: Path,
                                                    synth_stream: tuple[Path, Path]) -> None:
    mp4, _ = synth_stream
    done = avstream("replay", str(mp4), "--model", str(trained_bundle), "--no-view",
                    "--http", "0.0.0.0:0", timeout=60)
    assert done.returncode == EXIT_USAGE
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "avstream: error: --http 0.0.0.0:0 listens on 0.0.0.0, which is not a loopback address; "
        "expected --http-token TOKEN as well (every request must then send "
        "'Authorization: Bearer TOKEN')")
