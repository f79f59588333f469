"""The audio inputs PortAudio offers, and choosing one by index, name or default.

Listing and choosing are apart from capture (``avstream.sources.microphone``): ``avstream
devices`` lists, ``live`` and ``record`` resolve the input once before anything opens.
``sounddevice`` is imported only when asked for: without the PortAudio system library its import
raises OSError, and every other command must still work.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Final

from avstream.errors import DeviceError
from avstream.sources.device_spec import parse_device

PORTAUDIO_MISSING: Final[str] = (
    "PortAudio library not found: install the system package libportaudio2 "
    "(apt-get install libportaudio2)"
)
SOUNDDEVICE_MISSING: Final[str] = (
    "the Python package sounddevice is not installed: pip install 'avstream[live]'"
)


def sounddevice_module() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into the one line a user can act on."""
    try:
        import sounddevice
    except OSError as e:
        raise DeviceError(PORTAUDIO_MISSING) from e
    except ImportError as e:
        raise DeviceError(SOUNDDEVICE_MISSING) from e
    return sounddevice


@dataclass(frozen=True)
class AudioInput:
    """One PortAudio device that can record."""

    index: int
    name: str
    hostapi: str
    channels: int  # the most input channels the device offers
    default_sample_rate_hz: float
    is_default: bool

    def describe(self) -> str:
        return (
            f"{self.index} '{self.name}' ({self.hostapi}, {self.channels} ch, "
            f"{self.default_sample_rate_hz:g} Hz)"
        )


def list_audio_inputs() -> list[AudioInput]:
    """Every device PortAudio can record from, in PortAudio's index order."""
    sd = sounddevice_module()
    hostapis = sd.query_hostapis()
    default_in = _default_input_index(sd)
    inputs = []
    for dev in sd.query_devices():
        if int(dev["max_input_channels"]) <= 0:
            continue
        inputs.append(
            AudioInput(
                index=int(dev["index"]),
                name=str(dev["name"]),
                hostapi=str(hostapis[int(dev["hostapi"])]["name"]),
                channels=int(dev["max_input_channels"]),
                default_sample_rate_hz=float(dev["default_samplerate"]),
                is_default=int(dev["index"]) == default_in,
            )
        )
    return inputs


def _default_input_index(sd: ModuleType) -> int:
    """PortAudio's default input device, or -1 when there is none."""
    try:
        return int(sd.default.device[0])
    except (TypeError, ValueError):
        return -1


def _inputs_line(inputs: list[AudioInput]) -> str:
    if not inputs:
        return "there are no audio input devices"
    return "audio inputs are: " + "; ".join(i.describe() for i in inputs)


def resolve_audio_input(device: int | str | None) -> AudioInput:
    """Pick an input by index, by name (exact, else a unique substring), or the default one.

    An unknown or ambiguous choice is an error listing the inputs that exist: choosing one of
    several matches quietly is how people end up recording the wrong microphone.
    """
    inputs = list_audio_inputs()
    if device is None:
        for i in inputs:
            if i.is_default:
                return i
        if inputs:
            return inputs[0]
        raise DeviceError(f"no audio input device found: {_inputs_line(inputs)}")
    device = parse_device(device)
    if isinstance(device, int):
        index = device
        for i in inputs:
            if i.index == index:
                return i
        raise DeviceError(f"audio input {index} does not exist: {_inputs_line(inputs)}")
    wanted = device.strip().lower()
    exact = [i for i in inputs if i.name.lower() == wanted]
    if len(exact) == 1:
        return exact[0]
    matches = exact or [i for i in inputs if wanted in i.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceError(f"no audio input matches '{device}': {_inputs_line(inputs)}")
    raise DeviceError(
        f"audio input '{device}' is ambiguous, give an index: {_inputs_line(matches)}"
    )
