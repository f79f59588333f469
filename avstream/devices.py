"""What can be captured here: PortAudio's audio inputs and the local cameras that really open.

Cameras have no portable enumeration API in OpenCV, so each candidate index is opened and asked
for one frame; on Linux the candidates are the /dev/video* nodes, elsewhere the first few indices.
"""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from avstream.sources.camera import open_capture
from avstream.sources.microphone import AudioInput, list_audio_inputs

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
class DeviceList:
    audio_inputs: list[AudioInput]
    cameras: list[CameraDevice]

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


def probe_camera(index: int | str) -> CameraDevice | None:
    """Open one index or stream URL and read one frame; None if either fails."""
    cap = open_capture(index, PROBE_OPEN_TIMEOUT_MS)
    if cap is None:
        return None
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            log.info("camera %s opened but gave no frame", index)
            return None
        return CameraDevice(
            index=index,
            backend=str(cap.getBackendName()),
            width=int(frame.shape[1]),
            height=int(frame.shape[0]),
        )
    finally:
        cap.release()


def list_cameras(urls: Sequence[str] = ()) -> list[CameraDevice]:
    """The local cameras that open, then each of ``urls`` (network cameras) that opens."""
    candidates: list[int | str] = [*camera_candidates(), *urls]
    return [c for c in (probe_camera(i) for i in candidates) if c is not None]


def list_devices(camera_urls: Sequence[str] = ()) -> DeviceList:
    """Both kinds; DeviceError (one line) when PortAudio itself is missing."""
    return DeviceList(audio_inputs=list_audio_inputs(), cameras=list_cameras(camera_urls))
