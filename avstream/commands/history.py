"""``avstream history``: the timeline a ``--history`` file keeps, since a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from avstream.outputs.history_query import SINCE_FORMS, parse_since, read_history, render_text


def history(
    path: Annotated[Path, typer.Argument(help="A file written by --history PATH.")],
    since: Annotated[str, typer.Option(
        "--since", help=f"From when: {SINCE_FORMS}.")] = "24h",
    stream: Annotated[str | None, typer.Option(
        "--stream", help="Only this stream (its --name); default every stream in the file.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object (segments and minute rows) instead of lines.")] = False,
) -> None:
    """Print the label timeline kept by --history: clock time (UTC), label, how long, mean
    confidence."""
    found = read_history(path, parse_since(since), stream)
    if as_json:
        print(json.dumps(found.to_json(), allow_nan=False))
        return
    lines = render_text(found)
    print("\n".join(lines) if lines else f"no label changes since {since} in {path}")
