"""``avstream serve CONFIG``: the TOML file that names the streams, read into frozen dataclasses.

    model = "bundle"                 # one bundle (and one set of sessions) for every stream
    provider = "cpu"                 # optional, as --provider
    precision = "auto"               # optional, as --precision (auto, fp32, int8, fp16)
    threads = 0                      # optional, intra-op threads per graph (0: automatic, the
                                     # CPUs shared by the two lanes: encodes and windows)
    max_batch = 16                   # requests run together at most
    max_batch_wait_ms = 20           # how long a stream's request may wait for others

    [defaults]                       # pipeline options every stream starts from
    hop = 0.2                        # seconds, as --hop
    smoothing = "mean"               # and smooth_windows, margin, hold, floor as the options

    [streams.lobby]                  # one table per stream; its name is in every record
    camera = "0"                     # index or URL (rtsp://, udp://...); and/or
    mic = "USB"                      # PortAudio index or name substring ("default": the default)
    place = "lobby_host"             # with --ray: a Ray custom resource the actor must run on
    [streams.lobby.outputs]
    jsonl = "out/lobby.jsonl"        # any field of avstream.driver.Outputs (jsonl, later mqtt...)

    [streams.archive]
    file = "clips/a.mp4"             # a recording (audio = "a.wav" pairs a WAV, TAU style)
    pace = "live"                    # live (default: as if captured now) or fast

Relative paths are taken from the config file's folder. Every mistake is one line naming the
entry (``streams.lobby.camera``), what was wrong and what was expected: exit 2.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from avstream.driver import Outputs, pipeline_config
from avstream.errors import AvstreamError
from avstream.pipeline import PipelineConfig
from avstream.smoothing import SmoothingConfig
from avstream.windows import DEFAULT_HOP_MS, MS_PER_S

Pace = Literal["live", "fast"]
PACES: tuple[str, ...] = ("live", "fast")
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
OUTPUT_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Outputs) if f.name != "view")
STREAM_NAME_OUTPUT = "name"
"""The ``Outputs`` field naming a stream in network outputs: the stream's name unless given."""
SOURCE_KEYS = ("file", "audio", "pace", "camera", "mic", "place", "outputs")
TOP_KEYS = ("model", "provider", "precision", "threads", "max_batch", "max_batch_wait_ms", "defaults", "streams")


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


@dataclass(frozen=True)
class StreamConfig:
    name: str
    pipeline: PipelineConfig
    outputs: Outputs
    file: Path | None = None
    audio: Path | None = None
    """A WAV paired with ``file``'s video (TAU style)."""
    pace: Pace = "live"
    camera: int | str | None = None
    mic: int | str | None = None
    """A PortAudio index or name substring, or ``DEFAULT_MIC``."""
    place: str | None = None
    """Ray custom resource the stream's actor needs (where its devices are)."""

    @property
    def live(self) -> bool:
        return self.file is None


@dataclass(frozen=True)
class ServeConfig:
    model: Path
    streams: tuple[StreamConfig, ...]
    provider: str | None = None
    precision: str = "auto"
    threads: int = 0
    batching: BatchingConfig = BatchingConfig()


def _fail(path: Path, entry: str, problem: str, expected: str) -> AvstreamError:
    return AvstreamError(f"{path}: {entry}: {problem}; expected {expected}")


def _typed(path: Path, entry: str, value: Any, types: tuple[type, ...], expected: str) -> Any:
    if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
        raise _fail(path, entry, f"{value!r}", expected)
    return value


def _unknown(path: Path, where: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise _fail(path, f"{where}{key}", "unknown key", f"one of {', '.join(allowed)}")


def _pipeline(path: Path, where: str, table: Mapping[str, Any], base: Mapping[str, Any]
              ) -> tuple[PipelineConfig, dict[str, Any]]:
    values = dict(base)
    for key, default in PIPELINE_KEYS.items():
        if key in table:
            kind = (str,) if isinstance(default, str) else (int,) if isinstance(default, int) else (int, float)
            values[key] = _typed(path, f"{where}{key}", table[key], kind,
                                 f"a {'string' if kind == (str,) else 'number'}")
    try:
        config = pipeline_config(values["hop"], values["smoothing"], values["smooth_windows"],
                                 values["margin"], values["hold"], values["floor"])
    except AvstreamError as e:
        raise AvstreamError(f"{path}: {where.rstrip('.')}: {e}") from e
    return config, values


def _device(path: Path, entry: str, value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise _fail(path, entry, f"{value!r}", "a device index or a name/URL string")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def _file(path: Path, entry: str, value: Any) -> Path:
    _typed(path, entry, value, (str,), "a file path (string)")
    p = Path(value).expanduser()
    return p if p.is_absolute() else path.parent / p


def _stream(path: Path, name: str, table: Any, base: Mapping[str, Any]) -> StreamConfig:
    where = f"streams.{name}"
    if not isinstance(table, Mapping):
        raise _fail(path, where, f"{table!r}", "a table ([streams.NAME])")
    _unknown(path, f"{where}.", table, SOURCE_KEYS + tuple(PIPELINE_KEYS))
    pipeline, _ = _pipeline(path, f"{where}.", table, base)
    outputs_table = table.get("outputs", {})
    if not isinstance(outputs_table, Mapping):
        raise _fail(path, f"{where}.outputs", f"{outputs_table!r}", "a table of outputs")
    _unknown(path, f"{where}.outputs.", outputs_table, OUTPUT_KEYS)
    outputs_values = {k: (str(_file(path, f"{where}.outputs.{k}", v)) if k == "jsonl" and v != "-"
                          else v) for k, v in outputs_table.items()}
    if STREAM_NAME_OUTPUT in OUTPUT_KEYS:  # network outputs name their topics/metrics by it
        outputs_values.setdefault(STREAM_NAME_OUTPUT, name)
    try:
        outputs = Outputs(view=False, **outputs_values)
    except (TypeError, ValueError, AvstreamError) as e:
        raise _fail(path, f"{where}.outputs", str(e), "valid output options") from e
    has_file = "file" in table
    has_device = "camera" in table or "mic" in table
    if has_file == has_device:
        raise _fail(path, where, "has " + ("both a file and a device" if has_file else
                                           "no source"),
                    "either file = PATH, or camera and/or mic")
    place = table.get("place")
    if place is not None:
        _typed(path, f"{where}.place", place, (str,), "a Ray custom resource name")
    if has_file:
        pace = table.get("pace", "live")
        if pace not in PACES:
            raise _fail(path, f"{where}.pace", f"{pace!r}", f"one of {', '.join(PACES)}")
        file = _file(path, f"{where}.file", table["file"])
        if not file.is_file():
            raise _fail(path, f"{where}.file", f"{file} does not exist", "a media file")
        audio = None if "audio" not in table else _file(path, f"{where}.audio", table["audio"])
        if audio is not None and not audio.is_file():
            raise _fail(path, f"{where}.audio", f"{audio} does not exist", "a WAV file")
        return StreamConfig(name=name, pipeline=pipeline, outputs=outputs, file=file,
                            audio=audio, pace=pace, place=place)
    for key in ("audio", "pace"):
        if key in table:
            raise _fail(path, f"{where}.{key}", "given for a device stream", "it only with file")
    camera = None if "camera" not in table else _device(path, f"{where}.camera", table["camera"])
    mic = None if "mic" not in table else _device(path, f"{where}.mic", table["mic"])
    return StreamConfig(name=name, pipeline=pipeline, outputs=outputs, camera=camera, mic=mic,
                        place=place)


def parse_serve_config(path: Path, data: Mapping[str, Any]) -> ServeConfig:
    """The parsed TOML of ``path`` -> ServeConfig (AvstreamError naming the entry otherwise)."""
    _unknown(path, "", data, TOP_KEYS)
    if "model" not in data:
        raise _fail(path, "model", "missing", "the bundle directory every stream uses")
    model = _file(path, "model", data["model"])
    provider = data.get("provider")
    if provider is not None:
        _typed(path, "provider", provider, (str,), "a provider name (cpu, cuda...)")
    precision = _typed(path, "precision", data.get("precision", "auto"), (str,),
                       "auto, fp32, int8 or fp16")
    threads = _typed(path, "threads", data.get("threads", 0), (int,), "an integer >= 0")
    max_batch = _typed(path, "max_batch", data.get("max_batch", DEFAULT_MAX_BATCH), (int,),
                       "an integer >= 1")
    wait = _typed(path, "max_batch_wait_ms", data.get("max_batch_wait_ms",
                                                      DEFAULT_MAX_BATCH_WAIT_MS),
                  (int, float), "milliseconds >= 0")
    try:
        batching = BatchingConfig(max_batch=max_batch, max_wait_ms=float(wait))
    except ValueError as e:
        raise AvstreamError(f"{path}: {e}") from e
    if threads < 0:
        raise _fail(path, "threads", f"{threads}", "an integer >= 0 (0: automatic)")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise _fail(path, "defaults", f"{defaults!r}", "a table of pipeline options")
    _unknown(path, "defaults.", defaults, tuple(PIPELINE_KEYS))
    _, base = _pipeline(path, "defaults.", defaults, PIPELINE_KEYS)
    streams = data.get("streams")
    if not isinstance(streams, Mapping) or not streams:
        raise _fail(path, "streams", "missing or empty", "one [streams.NAME] table per stream")
    return ServeConfig(
        model=model, provider=provider, precision=precision, threads=threads, batching=batching,
        streams=tuple(_stream(path, name, t, base) for name, t in streams.items()),
    )


def load_serve_config(path: Path) -> ServeConfig:
    """Read and check a serve config file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise AvstreamError(f"config {path} cannot be read ({e.strerror}); expected a TOML "
                            f"file") from e
    except tomllib.TOMLDecodeError as e:
        raise AvstreamError(f"config {path} is not valid TOML ({e}); expected a TOML file") from e
    return parse_serve_config(path, data)
