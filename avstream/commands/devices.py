"""``avstream devices``: the audio inputs and cameras this machine can capture from."""

from __future__ import annotations

import json

import typer

from avstream.devices import list_devices


def devices(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    camera: list[str] = typer.Option(  # noqa: B008 - typer's way of declaring a repeated option
        [], "--camera", help="Also probe this stream URL (repeatable): listed if it opens."),
) -> None:
    """List audio inputs (index, name, channels, default sample rate) and cameras that open."""
    found = list_devices(camera)
    if as_json:
        print(json.dumps(found.to_dict(), indent=2))
        return
    print("audio inputs:")
    if not found.audio_inputs:
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
