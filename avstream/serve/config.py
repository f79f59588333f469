"""``avstream serve CONFIG``: the TOML file that names a site's streams, read into frozen dataclasses.

``examples/serve.toml`` shows every key; ``avstream/schemas/serve.schema.json`` states the shape.
Top level: ``model`` (one bundle and one set of sessions for every stream), ``provider``,
``precision``, ``threads``, ``max_batch``, ``max_batch_wait_ms``, ``num_replicas`` and
``replica_cpus`` (with ``--ray``: copies of the inference deployment sharing the streams, and
the CPUs each reserves); ``[defaults]``: pipeline options
every stream starts from; ``[outputs]``: outputs every stream starts from (a site's broker,
``jsonl_dir`` for ``<dir>/<name>.jsonl``) and ``http``, one page and /metrics for all of them; ``[streams.NAME]``: a device stream (``camera``,
``mic``, ``video_delay``, ``place``) or a file stream (``file``, ``audio``, ``pace``), with its own
pipeline options and ``[streams.NAME.outputs]``, which override ``[outputs]`` key by key.

``classes`` (top level, or a stream's own) is what its automations expect of the bundle's
classes: a bundle that differs is refused before any stream starts (avstream/serve/classes.py).
``${VAR}`` in any string is replaced by that environment variable (``$${`` for a literal
``${``), so secrets stay in the service's environment file. Relative paths are taken from the
config file's folder. Every mistake is one line naming the entry (``streams.lobby.camera``), what
was wrong and what was expected; all of a file's mistakes are reported at once (``avstream serve
CONFIG --check``): exit 2.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from avstream.bundle.schema import AUTO
from avstream.driver import Outputs, pipeline_config
from avstream.errors import AvstreamError
from avstream.outputs.http_config import HttpConfig
from avstream.serve.classes import bundle_mismatches, expected_classes
from avstream.serve.outputs_config import site_http, site_outputs, stream_outputs
from avstream.serve.toml_values import (
    device,
    fail,
    file_path,
    substitute_env,
    typed,
    unknown,
)
from avstream.sources.live import MAX_VIDEO_DELAY_S
from avstream.sources.stream_av import CAMERA_AUDIO
from avstream.stream.pipeline import PipelineConfig
from avstream.stream.smoothing import SmoothingConfig
from avstream.stream.windows import DEFAULT_HOP_MS, MS_PER_S

Pace = Literal["realtime", "fast"]
PACES: tuple[str, ...] = ("realtime", "fast")
"""``realtime``: at the file's own pace (replay's ``--realtime``); ``fast``: as fast as it decodes."""
PACE_ALIASES: dict[str, Pace] = {"live": "realtime"}
"""Older spellings still read: ``pace = "live"`` (before the word matched replay's)."""
DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_BATCH_WAIT_MS = 20.0
"""A tenth of the default 200-ms hop: what a window may lose waiting for other streams."""
DEFAULT_MIC = "default"
"""``mic = "default"``: the system's default input."""
_SMOOTH = SmoothingConfig()
PIPELINE_KEYS: dict[str, Any] = {
    "hop": DEFAULT_HOP_MS / MS_PER_S, "smoothing": _SMOOTH.method,
    "smooth_windows": _SMOOTH.windows, "margin": _SMOOTH.margin, "hold": _SMOOTH.hold_hops,
    "floor": _SMOOTH.floor,
}
"""Pipeline options a stream (or [defaults]) may set, with their defaults (the CLI's)."""
SOURCE_KEYS = ("file", "audio", "pace", "camera", "mic", "place", "outputs", "video_delay",
               "classes")
TOP_KEYS = ("model", "provider", "precision", "threads", "max_batch", "max_batch_wait_ms",
            "num_replicas", "replica_cpus", "defaults", "streams", "outputs", "classes")
@dataclass(frozen=True)
class BatchingConfig:
    max_batch: int = DEFAULT_MAX_BATCH
    """Requests (a stream's frames to encode, or one window) run together at most."""
    max_wait_ms: float = DEFAULT_MAX_BATCH_WAIT_MS
    """After the first request of a batch, how long to wait for the others."""

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch {self.max_batch}; expected >= 1")
        if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
            raise ValueError(f"max_batch_wait_ms {self.max_wait_ms}; expected a number >= 0")


class ConfigErrors(AvstreamError):
    """Every mistake of a config file, one line each (exit 2)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class StreamConfig:
    name: str
    pipeline: PipelineConfig
    outputs: Outputs
    file: Path | None = None
    audio: Path | None = None
    """A WAV paired with ``file``'s video (TAU style)."""
    pace: Pace = "realtime"
    camera: int | str | None = None
    mic: int | str | None = None
    """A PortAudio index or name substring, or ``DEFAULT_MIC``."""
    place: str | None = None
    """Ray custom resource the stream's actor needs (where its devices are)."""
    video_delay_s: float = 0.0
    """As ``avstream live --video-delay``: the camera's pictures placed this much earlier."""
    classes: tuple[str, ...] | None = None
    """Classes the stream's automations expect of the bundle (its own, else the top level's);
    None: not checked."""

    @property
    def live(self) -> bool:
        return self.file is None


@dataclass(frozen=True)
class ServeConfig:
    model: Path
    streams: tuple[StreamConfig, ...]
    provider: str | None = None
    precision: str = AUTO
    threads: int = 0
    batching: BatchingConfig = BatchingConfig()
    num_replicas: int = 1
    """With ``--ray``: replicas of the inference deployment (each its own sessions, on its own
    CPUs or GPU); the streams' requests are spread over them."""
    replica_cpus: float | None = None
    """With ``--ray``: CPUs each replica reserves from Ray (None: ``threads``, at least 1)."""
    http: HttpConfig | None = None
    """``[outputs] http``: one server for every stream (avstream/outputs/site.py), or None."""
    classes: tuple[str, ...] | None = None
    """Top-level ``classes``: what every stream without its own expects of the bundle."""


def _pipeline(path: Path, where: str, table: Mapping[str, Any], base: Mapping[str, Any]
              ) -> tuple[PipelineConfig, dict[str, Any]]:
    values = dict(base)
    for key, default in PIPELINE_KEYS.items():
        if key in table:
            kind = (str,) if isinstance(default, str) else (int,) if isinstance(default, int) else (int, float)
            values[key] = typed(path, f"{where}{key}", table[key], kind,
                                 f"a {'string' if kind == (str,) else 'number'}")
    try:
        config = pipeline_config(values["hop"], values["smoothing"], values["smooth_windows"],
                                 values["margin"], values["hold"], values["floor"])
    except AvstreamError as e:
        raise AvstreamError(f"{path}: {where.rstrip('.')}: {e}") from e
    return config, values


def _stream(path: Path, name: str, table: Any, base: Mapping[str, Any],
            site: Mapping[str, Any]) -> StreamConfig:
    where = f"streams.{name}"
    if not isinstance(table, Mapping):
        raise fail(path, where, f"{table!r}", "a table ([streams.NAME])")
    unknown(path, f"{where}.", table, SOURCE_KEYS + tuple(PIPELINE_KEYS))
    pipeline, _ = _pipeline(path, f"{where}.", table, base)
    outputs = stream_outputs(path, where, name, table.get("outputs", {}), site)
    has_file = "file" in table
    has_device = "camera" in table or "mic" in table
    if has_file == has_device:
        raise fail(path, where, "has " + ("both a file and a device" if has_file else
                                           "no source"),
                    "either file = PATH, or camera and/or mic")
    place = table.get("place")
    if place is not None:
        typed(path, f"{where}.place", place, (str,), "a Ray custom resource name")
    classes = (None if "classes" not in table else
               expected_classes(path, f"{where}.classes", table["classes"]))
    if has_file:
        pace = table.get("pace", "realtime")
        pace = PACE_ALIASES.get(pace, pace) if isinstance(pace, str) else pace
        if pace not in PACES:
            raise fail(path, f"{where}.pace", f"{pace!r}",
                       f"one of {', '.join(PACES)} (live: the old name of realtime)")
        file = file_path(path, f"{where}.file", table["file"])
        if not file.is_file():
            raise fail(path, f"{where}.file", f"{file} does not exist", "a media file")
        audio = None if "audio" not in table else file_path(path, f"{where}.audio", table["audio"])
        if audio is not None and not audio.is_file():
            raise fail(path, f"{where}.audio", f"{audio} does not exist", "a WAV file")
        return StreamConfig(name=name, pipeline=pipeline, outputs=outputs, file=file,
                            audio=audio, pace=pace, place=place, classes=classes)
    for key in ("audio", "pace"):
        if key in table:
            raise fail(path, f"{where}.{key}", "given for a device stream", "it only with file")
    camera = None if "camera" not in table else device(path, f"{where}.camera", table["camera"])
    mic = None if "mic" not in table else device(path, f"{where}.mic", table["mic"])
    if mic == CAMERA_AUDIO and not isinstance(camera, str):
        raise fail(path, f"{where}.mic", f'"{CAMERA_AUDIO}" with camera = {camera!r}',
                    "a camera stream URL (rtsp://, udp://...) whose audio track to use")
    delay = typed(path, f"{where}.video_delay", table.get("video_delay", 0.0), (int, float),
                   "seconds >= 0")
    if not 0 <= delay <= MAX_VIDEO_DELAY_S:
        raise fail(path, f"{where}.video_delay", f"{delay}", f"0 to {MAX_VIDEO_DELAY_S:g} seconds")
    return StreamConfig(name=name, pipeline=pipeline, outputs=outputs, camera=camera, mic=mic,
                        place=place, video_delay_s=float(delay), classes=classes)


def parse_serve_config(path: Path, data: Mapping[str, Any],
                       env: Mapping[str, str] | None = None) -> ServeConfig:
    """The parsed TOML of ``path`` -> ServeConfig; ConfigErrors with every mistake otherwise
    (the first of each section: a later key of a broken stream may depend on an earlier one)."""
    errors: list[str] = []
    data = substitute_env(path, data, env=env, errors=errors)

    def checked(fn, *args):  # noqa: ANN001, ANN202 - a section's parser and its arguments
        try:
            return fn(*args)
        except AvstreamError as e:
            errors.extend(e.errors if isinstance(e, ConfigErrors) else [str(e)])
            return None

    top = checked(_top, path, data)
    base = checked(_defaults, path, data)
    site = checked(site_outputs, path, data)
    streams_table = data.get("streams")
    streams: list[StreamConfig | None] = []
    if not isinstance(streams_table, Mapping) or not streams_table:
        errors.append(str(fail(path, "streams", "missing or empty",
                                "one [streams.NAME] table per stream")))
    elif base is not None and site is not None:
        streams = [checked(_stream, path, name, t, base, site) for name, t in streams_table.items()]
    if errors or top is None:
        raise ConfigErrors(errors)
    streams = [s if s is None or s.classes else dataclasses.replace(s, classes=top.classes)
               for s in streams]
    return dataclasses.replace(top, streams=tuple(s for s in streams if s is not None),
                               http=site_http(path, site or {}))


def _top(path: Path, data: Mapping[str, Any]) -> ServeConfig:
    unknown(path, "", data, TOP_KEYS)
    if "model" not in data:
        raise fail(path, "model", "missing", "the bundle directory every stream uses")
    model = file_path(path, "model", data["model"])
    provider = data.get("provider")
    if provider is not None:
        typed(path, "provider", provider, (str,), "a provider name (cpu, cuda...)")
    precision = typed(path, "precision", data.get("precision", AUTO), (str,),
                       "auto, fp32, int8 or fp16")
    threads = typed(path, "threads", data.get("threads", 0), (int,), "an integer >= 0")
    max_batch = typed(path, "max_batch", data.get("max_batch", DEFAULT_MAX_BATCH), (int,),
                       "an integer >= 1")
    wait = typed(path, "max_batch_wait_ms", data.get("max_batch_wait_ms",
                                                      DEFAULT_MAX_BATCH_WAIT_MS),
                  (int, float), "milliseconds >= 0")
    try:
        batching = BatchingConfig(max_batch=max_batch, max_wait_ms=float(wait))
    except ValueError as e:
        raise AvstreamError(f"{path}: {e}") from e
    if threads < 0:
        raise fail(path, "threads", f"{threads}", "an integer >= 0 (0: automatic)")
    replicas = typed(path, "num_replicas", data.get("num_replicas", 1), (int,), "an integer >= 1")
    if replicas < 1:
        raise fail(path, "num_replicas", f"{replicas}", "an integer >= 1")
    cpus = data.get("replica_cpus")
    if cpus is not None and not (typed(path, "replica_cpus", cpus, (int, float),
                                       "a number of CPUs > 0") > 0 and math.isfinite(cpus)):
        raise fail(path, "replica_cpus", f"{cpus}", "a number of CPUs > 0")
    classes = None if "classes" not in data else expected_classes(path, "classes", data["classes"])
    return ServeConfig(model=model, provider=provider, precision=precision, threads=threads,
                       batching=batching, num_replicas=replicas,
                       replica_cpus=None if cpus is None else float(cpus), streams=(),
                       classes=classes)


def _defaults(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    defaults = data.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise fail(path, "defaults", f"{defaults!r}", "a table of pipeline options")
    unknown(path, "defaults.", defaults, tuple(PIPELINE_KEYS))
    _, base = _pipeline(path, "defaults.", defaults, PIPELINE_KEYS)
    return base


def load_serve_config(path: Path) -> ServeConfig:
    """Read and check a serve config file, and the bundle's classes against those it expects."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise AvstreamError(f"config {path} cannot be read ({e.strerror}); expected a TOML "
                            f"file") from e
    except tomllib.TOMLDecodeError as e:
        raise AvstreamError(f"config {path} is not valid TOML ({e}); expected a TOML file") from e
    config = parse_serve_config(path, data)
    mismatches = bundle_mismatches(path, config.model, {s.name: s.classes for s in config.streams})
    if mismatches:
        raise ConfigErrors(mismatches)
    return config
