"""The outputs of a serve config: ``[outputs]`` for every stream, ``[streams.NAME.outputs]`` for one.

A stream's outputs start from the site's and its own table overrides them key by key. Files
and names are each stream's own: ``jsonl_dir`` / ``history_dir`` give each stream
``<dir>/<name>.jsonl`` / ``<dir>/<name>.db``. ``[outputs] http`` is one server for the whole
process (every stream's page and one /metrics); a stream's own ``http`` is a server of its own,
as ``--http``. Every option is checked here, before anything starts, and a mistake names the
TOML key, not the CLI flag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avstream.driver import Outputs
from avstream.errors import AvstreamError
from avstream.outputs.http_config import SITE_NAME, HttpConfig, parse_http_address
from avstream.serve.toml_values import fail, file_path, key_names, unknown

OUTPUT_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Outputs) if f.name != "view")
STREAM_NAME_OUTPUT = "name"
"""The ``Outputs`` field naming a stream in network outputs: the stream's name unless given."""
JSONL_DIR = "jsonl_dir"
"""``[outputs] jsonl_dir``: a folder where each stream writes ``<name>.jsonl``."""
HISTORY_DIR = "history_dir"
"""``[outputs] history_dir``: a folder where each stream keeps its history ``<name>.db``."""
FOLDERS: dict[str, tuple[str, str]] = {JSONL_DIR: ("jsonl", ".jsonl"), HISTORY_DIR: ("history", ".db")}
"""Site folder key -> (the stream's output it sets, the file's suffix)."""
FILE_OUTPUTS: tuple[str, ...] = ("jsonl", "history")
"""Outputs that are file paths (relative ones are taken from the config's folder)."""
PER_STREAM_OUTPUT_KEYS: tuple[str, ...] = ("jsonl", "history", "name")
"""Outputs only a stream itself can set: its files and its name."""
SITE_HTTP_KEYS: tuple[str, ...] = ("http", "http_token")
"""In ``[outputs]``: ONE server for the whole process (every stream's page, one /metrics), not
inherited by the streams; in ``[streams.NAME.outputs]``: that stream's own server, as --http."""
SITE_OUTPUT_KEYS: tuple[str, ...] = (
    *(k for k in OUTPUT_KEYS if k not in PER_STREAM_OUTPUT_KEYS), *FOLDERS)
"""What ``[outputs]`` may set (for every stream, or for the site's server)."""


def site_http(path: Path, site: Mapping[str, Any]) -> HttpConfig | None:
    """``[outputs] http`` / ``http_token`` -> the site server's checked address, or None."""
    if "http" not in site:
        if "http_token" in site:
            raise fail(path, "outputs.http_token", "given without outputs.http",
                       "outputs.http = \"[HOST:]PORT\" as well (or no http_token)")
        return None
    token = site.get("http_token")
    if token is not None and not isinstance(token, str):
        raise fail(path, "outputs.http_token", f"{token!r}", "a secret string")
    try:
        return parse_http_address(site["http"], SITE_NAME, token)
    except AvstreamError as e:
        raise AvstreamError(f"{path}: outputs.{key_names(str(e))}") from e


def site_outputs(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    table = data.get("outputs", {})
    if not isinstance(table, Mapping):
        raise fail(path, "outputs", f"{table!r}", "a table of outputs for every stream")
    unknown(path, "outputs.", table, SITE_OUTPUT_KEYS)
    site = dict(table)
    for key in FOLDERS:
        if key not in site:
            continue
        folder = file_path(path, f"outputs.{key}", site[key])
        if not folder.is_dir():
            raise fail(path, f"outputs.{key}", f"{folder} is not a folder",
                       f"an existing folder for each stream's <name>{FOLDERS[key][1]}")
        site[key] = folder
    site_http(path, site)
    return site



def stream_outputs(path: Path, where: str, name: str, outputs_table: Any,
                   site: Mapping[str, Any]) -> Outputs:
    """``[streams.NAME.outputs]`` over the site's ``[outputs]`` -> the stream's checked Outputs."""
    if not isinstance(outputs_table, Mapping):
        raise fail(path, f"{where}.outputs", f"{outputs_table!r}", "a table of outputs")
    unknown(path, f"{where}.outputs.", outputs_table, OUTPUT_KEYS)
    inherited = {k: v for k, v in site.items() if k not in FOLDERS and k not in SITE_HTTP_KEYS}
    for key, (output, suffix) in FOLDERS.items():
        if key in site:
            inherited[output] = str(Path(site[key]) / f"{name}{suffix}")
    own = {k: (str(file_path(path, f"{where}.outputs.{k}", v))
               if k in FILE_OUTPUTS and v != "-" else v) for k, v in outputs_table.items()}
    outputs_values = {**inherited, **own}
    if STREAM_NAME_OUTPUT in OUTPUT_KEYS:  # network outputs name their topics/metrics by it
        outputs_values.setdefault(STREAM_NAME_OUTPUT, name)
    try:
        outputs = Outputs(view=False, **outputs_values)
        outputs.check()
    except (TypeError, ValueError, AvstreamError) as e:
        raise AvstreamError(f"{path}: {where}.outputs.{key_names(str(e))}") from e
    return outputs
