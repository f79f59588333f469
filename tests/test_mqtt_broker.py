"""The MQTT output's behaviour against a real Mosquitto on loopback: a broker that goes away and
comes back (hops dropped and counted, never waited for; discovery, online and the state again
on its return), the last will of a process killed outright, a TLS listener that requires a
client certificate, and a replay that never publishes as the live device.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from cli_run import avstream, child_env, kill_group
from mqtt_env import end_summary, wait_connected
from net_env import (
    Broker,
    Subscriber,
    hop_record,
    make_tls_files,
    mosquitto,
    retained,
    run_info,
)

from avstream.outputs.mqtt import MqttConfig, MqttSink, parse_mqtt_url
from avstream.outputs.network import default_stream_name
from avstream.outputs.stats import OutputStats


def test_broker_gone_and_back(broker: Broker) -> None:
    """Hops while the broker is down are dropped and counted, never waited for; on its return
    the sink reconnects and publishes discovery, online and the current state again."""
    config = MqttConfig(host="127.0.0.1", port=broker.port, name="r", hop_rate_hz=5.0,
                        reconnect_max_s=1)
    sink = MqttSink(config, OutputStats())
    sink.start(run_info())
    wait_connected(sink)
    sink.hop(hop_record(0, "park"))
    deadline = time.monotonic() + 10
    # 4 discovery configs, online, 2 inputs, park's state, confidence and hop
    while sink.stats.of("mqtt")["published"] < 10:
        assert time.monotonic() < deadline, sink.stats.of("mqtt")
        time.sleep(0.02)
    broker.kill()
    deadline = time.monotonic() + 10
    while sink.stats.of("mqtt")["disconnects"] < 1:  # what was sent before this is in flight
        assert time.monotonic() < deadline, "the sink did not notice the broker had gone"
        time.sleep(0.02)
    t0 = time.monotonic()
    for k in range(1, 51):
        sink.hop(hop_record(k, "metro" if k < 30 else "tram"))
    assert time.monotonic() - t0 < 1.0  # 50 hops never waited for a broker
    deadline = time.monotonic() + 10
    while sink.stats.of("mqtt")["dropped"] < 54:  # 50 hop records, 2 label changes (state
        # and confidence each)
        assert time.monotonic() < deadline, sink.stats.of("mqtt")
        time.sleep(0.02)
    broker.start()
    wait_connected(sink, connects=2)
    with Subscriber(broker.port) as sub:  # live or retained, whichever comes first
        assert sub.wait_for(config.availability_topic, "online") is not None
        assert sub.wait_for(config.discovery_topic("sensor", "scene")) is not None
    state = retained(broker.port, config.state_topic)
    assert state is not None and state.retain and json.loads(state.payload)["label"] == "tram"
    summary = end_summary()
    sink.end(summary)
    counts = summary.outputs["mqtt"]
    assert counts["disconnects"] == 1 and counts["connects"] == 2
    assert counts["dropped"] == counts["dropped_disconnected"] == 54


def test_last_will_when_the_process_dies(broker: Broker, tmp_path: Path) -> None:
    """A process killed outright leaves 'offline', retained, through the broker's last will."""
    script = tmp_path / "publisher.py"
    script.write_text(
        "import sys, time\n"
        "sys.path[:0] = [sys.argv[2]]\n"
        "from net_env import hop_record, run_info\n"
        "from avstream.outputs.mqtt import MqttConfig, MqttSink\n"
        "from avstream.outputs.stats import OutputStats\n"
        "sink = MqttSink(MqttConfig(host='127.0.0.1', port=int(sys.argv[1]), name='w'), OutputStats())\n"
        "sink.start(run_info())\n"
        "sink.hop(hop_record(0, 'park'))\n"
        "time.sleep(60)\n")
    topic = "avstream/w/availability"
    with Subscriber(broker.port) as sub:
        proc = subprocess.Popen([sys.executable, str(script), str(broker.port),
                                 str(Path(__file__).parent)], start_new_session=True)
        try:
            assert sub.wait_for(topic, "online", timeout_s=20), "the publisher never came online"
            t_kill = time.monotonic()
            kill_group(proc)  # SIGKILL: no goodbye, the socket just closes
            assert sub.wait_for(topic, "offline", timeout_s=10, after=t_kill)
        finally:
            kill_group(proc)
    got = retained(broker.port, topic)
    assert got is not None and got.retain and got.payload == "offline"
    state = retained(broker.port, "avstream/w/state")
    assert state is not None and json.loads(state.payload)["label"] == "park"


def _publish_retained(port: int, topic: str, payload: str) -> None:
    import paho.mqtt.publish as publish

    publish.single(topic, payload, qos=1, retain=True, hostname="127.0.0.1", port=port)


def test_a_replay_never_claims_the_live_devices_identity(broker: Broker, tiny_bundle: Path,
                                                         av_file: Path) -> None:
    """A host whose live service is configured through AVSTREAM_MQTT: a replay run there must
    not publish as the host's device (nor leave it 'offline' at its end). The variable is the
    live service's; a replay given --mqtt publishes as replay-<file stem>."""
    host = default_stream_name()
    live = f"avstream/{host}/availability"
    _publish_retained(broker.port, live, "online")  # the live daemon of this host
    env = child_env(AVSTREAM_MQTT=broker.url)
    replay = ["replay", str(av_file), "--model", str(tiny_bundle), "--no-view"]
    with Subscriber(broker.port) as sub:
        done = avstream(*replay, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "mqtt:" not in done.stderr  # no MQTT output was started
        done = avstream(*replay, "--mqtt", f"{broker.url}", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        own = f"avstream/replay-{av_file.stem}/availability"
        assert sub.wait_for(own, "offline") is not None, done.stderr[-3000:]
    published = {m.topic for m in sub.messages if not m.retain or m.topic != live}
    assert not {t for t in published if host in t.split("/")}, published
    got = retained(broker.port, live)
    assert got is not None and got.payload == "online"  # the live device is still online


def test_mqtts_with_a_ca_and_a_client_certificate(tmp_path: Path) -> None:
    """A broker with a TLS listener that requires a client certificate: the sink connects with
    ca=, cert=, key= and publishes; trusting another CA, it never connects."""
    files = make_tls_files(tmp_path / "pki")
    with mosquitto(tmp_path / "broker", tls=files) as broker, Subscriber(broker.port) as sub:
        url = (f"mqtts://127.0.0.1:{broker.tls_port}/secure?ca={files.ca}"
               f"&cert={files.client_cert}&key={files.client_key}")
        config = parse_mqtt_url(url, "t")
        sink = MqttSink(config, OutputStats())
        assert sink.description.startswith("mqtts (TLS): 127.0.0.1:")
        sink.start(run_info())
        wait_connected(sink)
        sink.hop(hop_record(0, "park"))
        assert sub.wait_for("secure/t/availability", "online") is not None
        state = sub.wait_for("secure/t/state")
        assert state is not None and json.loads(state.payload)["label"] == "park"
        sink.end(end_summary())

        wrong = parse_mqtt_url(url.replace(str(files.ca), str(files.other_ca)), "u")
        sink = MqttSink(wrong, OutputStats())
        sink.start(run_info())
        time.sleep(3.0)
        assert sink.stats.of("mqtt")["connects"] == 0
        sink.end(end_summary())
        assert not sub.on("secure/u/availability")
