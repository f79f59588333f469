"""Real network parts for the output tests: a private Mosquitto broker (with a TLS listener and
certificates made here when asked), a paho subscriber, a headless Chromium driven by Playwright,
hand-made hop records, and a file source whose camera is reported lost and back.

The broker runs in the foreground as our child with its own config (one loopback listener, no
persistence, so a killed broker forgets its retained messages like a fresh one), under
``timeout -s KILL`` and in its own process group; teardown kills it by pid. A missing system
component skips with the reason, or fails under AVSTREAM_REQUIRE_LIVE=1 (tests/live_env.py).
"""

from __future__ import annotations

import contextlib
import getpass
import importlib.util
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from live_env import LOOPBACK, kill_group, missing

from avstream.results.counters import Counters
from avstream.results.records import HopRecord, RunInfo
from avstream.sources.base import (
    Modality,
    ModalityLost,
    ModalityRestored,
    Source,
    SourceEvent,
    SourceInfo,
    VideoFrame,
)

BROKER_LIFETIME_S: Final[int] = 300
BROKER_START_TIMEOUT_S: Final[float] = 10.0
CHROMIUM: Final[str] = "/usr/bin/chromium"
CLASSES: Final[tuple[str, ...]] = ("park", "metro", "tram")
HOP_S: Final[float] = 0.2


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def require_python(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        missing(f"the Python package {module} is not installed; pip install 'avstream[{extra}]'")


# --------------------------------------------------------------------------- broker


@dataclass(frozen=True)
class TlsFiles:
    """A CA, a server certificate it signed (for 127.0.0.1), and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed nothing here: a client trusting only it must refuse the broker."""


@dataclass
class Broker:
    root: Path
    port: int
    proc: subprocess.Popen | None = None
    tls: TlsFiles | None = None
    tls_port: int | None = None
    """With ``tls``: a second listener that speaks TLS and requires a client certificate."""

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    def start(self) -> Broker:
        conf = self.root / "mosquitto.conf"
        text = f"listener {self.port} {LOOPBACK}\n"
        if self.tls is not None:
            t = self.tls
            text += (f"listener {self.tls_port} {LOOPBACK}\ncafile {t.ca}\ncertfile "
                     f"{t.server_cert}\nkeyfile {t.server_key}\nrequire_certificate true\n")
        # 'user': run as whoever runs the tests (as root, mosquitto would otherwise switch to
        # the user 'mosquitto', who cannot read the test's certificates in its temp dir)
        conf.write_text(text + f"user {getpass.getuser()}\nallow_anonymous true\n"
                        "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n")
        log = (self.root / "mosquitto.log").open("a")
        self.proc = subprocess.Popen(
            ["timeout", "-s", "KILL", str(BROKER_LIFETIME_S), "mosquitto", "-c", str(conf)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, self.port), 0.2):
                return self
            time.sleep(0.05)
        self.kill()
        missing(f"mosquitto did not start on port {self.port} within "
                f"{BROKER_START_TIMEOUT_S:g} s: {(self.root / 'mosquitto.log').read_text()[-1000:]}")

    def kill(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None


@contextlib.contextmanager
def mosquitto(root: Path, tls: TlsFiles | None = None) -> Iterator[Broker]:
    if shutil.which("mosquitto") is None:
        missing("mosquitto is not installed (Debian package mosquitto; see .ci/live-setup.sh)")
    require_python("paho.mqtt", "mqtt")
    root.mkdir(parents=True, exist_ok=True)
    broker = Broker(root, free_tcp_port(), tls=tls,
                    tls_port=None if tls is None else free_tcp_port()).start()
    try:
        yield broker
    finally:
        broker.kill()


def make_tls_files(root: Path) -> TlsFiles:
    """Certificates made here with the ``cryptography`` package (EC P-256, valid one day)."""
    require_python("cryptography", "dev")
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    root.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
        crt, pem = root / f"{stem}.crt", root / f"{stem}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
        return crt, pem

    def issue(cn: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
              signer: ec.EllipticCurvePrivateKey, ca: bool, usage: object = None,
              san: object = None) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                critical=False)
        else:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                signer.public_key()), critical=False)
        if usage is not None:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san is not None:
            b = b.add_extension(x509.SubjectAlternativeName([san]), critical=False)
        return b.sign(signer, hashes.SHA256())

    keys = {k: ec.generate_private_key(ec.SECP256R1()) for k in ("ca", "server", "client", "other")}
    ca_cert = issue("avstream test CA", keys["ca"], name("avstream test CA"), keys["ca"], True)
    ca, _ = write("ca", ca_cert, keys["ca"])
    other, _ = write("other-ca", issue("another CA", keys["other"], name("another CA"),
                                       keys["other"], True), keys["other"])
    server = issue(LOOPBACK, keys["server"], ca_cert.subject, keys["ca"], False,
                   ExtendedKeyUsageOID.SERVER_AUTH,
                   x509.IPAddress(ipaddress.ip_address(LOOPBACK)))
    server_cert, server_key = write("server", server, keys["server"])
    client = issue("avstream client", keys["client"], ca_cert.subject, keys["ca"], False,
                   ExtendedKeyUsageOID.CLIENT_AUTH)
    client_cert, client_key = write("client", client, keys["client"])
    return TlsFiles(ca, server_cert, server_key, client_cert, client_key, other)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: str
    retain: bool
    at: float
    """time.monotonic() when it arrived."""
    wall: float
    """time.time() when it arrived (to compare with a record's wall_time)."""


@dataclass
class Subscriber:
    """A paho client on '#' that records everything (and reconnects when the broker returns)."""

    port: int
    topics: tuple[str, ...] = ("#",)
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        import paho.mqtt.client as mqtt

        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{id(self)}")
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in self.topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, client: object, userdata: object, msg: object) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, msg.payload.decode(), bool(msg.retain),  # type: ignore[attr-defined]
                                          time.monotonic(), time.time()))

    def __enter__(self) -> Subscriber:
        self.client.connect(LOOPBACK, self.port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise TimeoutError("the test subscriber did not get its SUBACK in 5 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, payload: str | None = None, timeout_s: float = 10.0,
                 after: float = 0.0) -> Received | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in self.on(topic):
                if m.at >= after and (payload is None or m.payload == payload):
                    return m
            time.sleep(0.05)
        return None


def retained(port: int, topic: str, timeout_s: float = 5.0) -> Received | None:
    """What a fresh subscriber gets on ``topic`` at once: the retained message, or None."""
    with Subscriber(port, (topic,)) as sub:
        return sub.wait_for(topic, timeout_s=timeout_s)


# --------------------------------------------------------------------------- browser


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (the Debian package) under Playwright; yields the Browser."""
    if not os.path.exists(CHROMIUM):
        missing(f"{CHROMIUM} is not installed (Debian packages chromium, chromium-driver; see "
                f".ci/live-setup.sh)")
    require_python("playwright", "dev")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def artifacts_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $AVSTREAM_TEST_ARTIFACTS, else the test's temp dir."""
    root = Path(os.environ.get("AVSTREAM_TEST_ARTIFACTS") or tmp_path / "artifacts")
    root.mkdir(parents=True, exist_ok=True)
    return root


# --------------------------------------------------------------------------- records


def run_info(classes: tuple[str, ...] = CLASSES) -> RunInfo:
    return RunInfo(source="test", live=False, source_modalities=("audio", "video"),
                   classes=classes, providers={"audio": ("CPUExecutionProvider",)},
                   hop_s=HOP_S, window_s=1.0, audio_in="test", video_in="test", smoothing={},
                   paced="fast")


def hop_record(k: int, label: str, classes: tuple[str, ...] = CLASSES) -> HopRecord:
    """Window ``k`` (t = k x hop) whose smoothed label is ``label`` with probability 0.8."""
    probs = np.full(len(classes), 0.2 / (len(classes) - 1), dtype=np.float32)
    probs[classes.index(label)] = 0.8
    counters = Counters(windows=k + 1, hops_dropped=k // 10)
    return HopRecord(window=k, t=round(k * HOP_S, 6), label=label, confidence=0.8, probs=probs,
                     raw_label=label, raw_confidence=0.8, raw_probs=probs,
                     modalities=("audio", "video"), branch="final", frames_encoded=1,
                     latency_ms={"audio": 4.0, "frame": 30.0, "total": 40.0}, counters=counters,
                     wall_time=time.time(), classes=classes)


# --------------------------------------------------------------------------- sources


class CameraOutage(Source):
    """A file source whose camera is reported lost at ``lost_t`` and back at ``back_t``, as a
    live source reports an unplugged camera (its frames in between are withheld)."""

    def __init__(self, path: Path, lost_t: float, back_t: float) -> None:
        from avstream.sources.media_file import MediaFileSource

        self.inner = MediaFileSource(path)
        self.lost_t, self.back_t = lost_t, back_t

    @property
    def info(self) -> SourceInfo:
        return self.inner.info

    def events(self) -> Iterator[SourceEvent]:
        state = "up"
        for event in self.inner.events():
            if isinstance(event, VideoFrame):
                if state == "up" and event.t >= self.lost_t:
                    state = "lost"
                    yield ModalityLost(Modality.VIDEO, event.t, "test: camera unplugged")
                if state == "lost":
                    if event.t < self.back_t:
                        continue
                    state = "back"
                    yield ModalityRestored(Modality.VIDEO, event.t)
            yield event

    def close(self) -> None:
        self.inner.close()
