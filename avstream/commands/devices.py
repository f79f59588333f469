"""``avstream devices``: the audio inputs and cameras this machine can capture from."""

from __future__ import annotations

import json

import typer

from avstream.cli import app
from avstream.devices import list_devices


@app.command("devices")
def devices(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """List audio inputs (index, name, channels, default sample rate) and cameras that open."""
    found = list_devices()
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
        print(f"  {c.index:3d}  {c.width}x{c.height}  [{c.backend}]")
