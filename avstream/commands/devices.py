"""``avstream devices``: the audio inputs and cameras this machine can capture from."""

from __future__ import annotations

import json
import sys

import typer

from avstream.errors import DeviceError
from avstream.sources.inventory import DeviceList, list_devices


def devices(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    camera: list[str] = typer.Option(  # noqa: B008 - typer's way of declaring a repeated option
        [], "--camera",
        help="Also probe this stream URL (repeatable): listed if it gives a frame, else why not."),
) -> None:
    """List audio inputs (index, name, channels, default sample rate) and cameras that open.

    Exit 0 when the listing is complete; 3 when a --camera URL gave no frame (each with why), or
    when nothing could be listed (no PortAudio/sounddevice for microphones and no camera).
    Without PortAudio/sounddevice the cameras are still listed and one line says what to install
    for microphones.
    """
    found = list_devices(camera)
    if as_json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        print_table(found)
    if found.camera_failures:
        failed = "; ".join(f"{f.index} {f.reason}" for f in found.camera_failures)
        raise DeviceError(f"--camera: {failed}")
    if found.audio_missing is not None:
        if not found.cameras:
            raise DeviceError(f"{found.audio_missing}; and no camera opened")
        print(f"avstream: microphones not listed: {found.audio_missing}", file=sys.stderr)


def print_table(found: DeviceList) -> None:
    print("audio inputs:")
    if found.audio_missing is not None:
        print(f"  (not listed: {found.audio_missing})")
    elif not found.audio_inputs:
        print("  (none)")
    for a in found.audio_inputs:
        mark = "*" if a.is_default else " "
        print(
            f" {mark}{a.index:3d}  {a.name}  [{a.hostapi}]  {a.channels} ch  "
            f"{a.default_sample_rate_hz:g} Hz"
        )
    print("cameras:")
    if not found.cameras:
        print("  (none opened; a stream URL can still be given to --camera)")
    for c in found.cameras:
        print(f"  {c.index!s:>3}  {c.width}x{c.height}  [{c.backend}]")
    for f in found.camera_failures:
        print(f"  {f.index!s:>3}  {f.reason}")
