"""What can be captured here: PortAudio's audio inputs and the local cameras that really open.

Cameras have no portable enumeration API in OpenCV, so each candidate index is opened and asked
for one frame; on Linux the candidates are the /dev/video* nodes, elsewhere the first few indices.
A stream URL that was asked for and did not give a frame is kept with the reason (a timeout,
what OpenCV/FFmpeg reported), never dropped. Microphones need PortAudio and sounddevice (the
``live`` extra); without them the cameras are still listed and ``audio_missing`` says why the
microphones are not.
"""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from avstream.errors import DeviceError
from avstream.sources.audio_inputs import AudioInput, list_audio_inputs
from avstream.sources.camera import open_capture_explained

log = logging.getLogger(__name__)

PROBE_INDICES: Final[int] = 4  # indices tried where /dev/video* cannot be listed
PROBE_OPEN_TIMEOUT_MS: Final[int] = 2000
_VIDEO_NODE: Final[re.Pattern[str]] = re.compile(r"^video(\d+)$")


@dataclass(frozen=True)
class CameraDevice:
    """A camera that opened and delivered a frame."""

    index: int | str
    """A local device index, or the stream URL it was asked to probe."""
    backend: str
    width: int
    height: int


@dataclass(frozen=True)
class CameraFailure:
    """A camera (a stream URL asked for, or a local index) that did not give a frame."""

    index: int | str
    reason: str
    """Why, in one line: a timeout, what OpenCV/FFmpeg reported, or "opened but gave no frame"."""


@dataclass(frozen=True)
class DeviceList:
    audio_inputs: list[AudioInput]
    cameras: list[CameraDevice]
    camera_failures: list[CameraFailure]
    """Stream URLs that were asked for and did not give a frame, with why."""
    audio_missing: str | None = None
    """Why microphones could not be listed (PortAudio or sounddevice missing); None if they were."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "audio_inputs": [
                {
                    "index": a.index,
                    "name": a.name,
                    "hostapi": a.hostapi,
                    "channels": a.channels,
                    "default_sample_rate": a.default_sample_rate_hz,
                    "default": a.is_default,
                }
                for a in self.audio_inputs
            ],
            "cameras": [asdict(c) for c in self.cameras],
            "camera_failures": [asdict(f) for f in self.camera_failures],
            "audio_missing": self.audio_missing,
        }


def camera_candidates() -> list[int]:
    """Indices worth probing: the V4L2 nodes on Linux, else the first few."""
    if platform.system() == "Linux":
        dev = Path("/dev")
        found = []
        for node in dev.glob("video*"):
            m = _VIDEO_NODE.match(node.name)
            if m:
                found.append(int(m.group(1)))
        return sorted(found)
    return list(range(PROBE_INDICES))


def probe_camera(index: int | str) -> CameraDevice | CameraFailure:
    """Open one index or stream URL and read one frame; a CameraFailure says which step failed."""
    cap, why = open_capture_explained(index, PROBE_OPEN_TIMEOUT_MS)
    if cap is None:
        log.info("camera %s did not open: %s", index, why)
        return CameraFailure(index=index, reason=f"did not open: {why}")
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            log.info("camera %s opened but gave no frame", index)
            return CameraFailure(index=index, reason="opened but gave no frame")
        return CameraDevice(
            index=index,
            backend=str(cap.getBackendName()),
            width=int(frame.shape[1]),
            height=int(frame.shape[0]),
        )
    finally:
        cap.release()


def list_cameras(urls: Sequence[str] = ()) -> tuple[list[CameraDevice], list[CameraFailure]]:
    """The local cameras that open, then each of ``urls`` (network cameras) that opens; and the
    URLs that did not, with why (a /dev/video node that does not open is no camera: UVC
    cameras add metadata nodes that never do, so those are only logged)."""
    found: list[CameraDevice] = []
    failed: list[CameraFailure] = []
    for index in [*camera_candidates(), *urls]:
        probed = probe_camera(index)
        if isinstance(probed, CameraDevice):
            found.append(probed)
        elif isinstance(index, str):
            failed.append(probed)
    return found, failed


def list_devices(camera_urls: Sequence[str] = ()) -> DeviceList:
    """Both kinds. Without PortAudio or sounddevice the cameras are still listed, and
    ``audio_missing`` holds the one-line reason (which names what to install)."""
    try:
        audio, missing = list_audio_inputs(), None
    except DeviceError as e:
        audio, missing = [], str(e)
    cameras, failures = list_cameras(camera_urls)
    return DeviceList(audio_inputs=audio, cameras=cameras, camera_failures=failures,
                      audio_missing=missing)
