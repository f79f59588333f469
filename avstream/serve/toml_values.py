"""Reading a TOML config's values: typed checks whose errors name the key, and ``${VAR}``.

Every mistake becomes one line ``FILE: key.path: what was wrong; expected what`` (exit 2), so
the person who wrote the file finds the line to fix; ``${VAR}`` keeps a site's secrets in the
service's environment file instead of the config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avstream.errors import AvstreamError
from avstream.sources.device_spec import parse_device

ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
FLAG_KEYS: dict[str, str] = {"--mqtt-hop-rate": "mqtt_hop_rate_hz", "--http-token": "http_token",
                             "--jsonl-rotate": "jsonl_rotate", "--jsonl-keep": "jsonl_keep",
                             "--history-days": "history_days", "--history-max-mb": "history_max_mb",
                             "--jsonl": "jsonl", "--history": "history", "--mqtt": "mqtt",
                             "--http": "http", "--name": "name"}
"""Command-line flags in an output's error -> the TOML key the user wrote instead."""


def fail(path: Path, entry: str, problem: str, expected: str) -> AvstreamError:
    return AvstreamError(f"{path}: {entry}: {problem}; expected {expected}")


def typed(path: Path, entry: str, value: Any, types: tuple[type, ...], expected: str) -> Any:
    if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
        raise fail(path, entry, f"{value!r}", expected)
    return value


def unknown(path: Path, where: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise fail(path, f"{where}{key}", "unknown key", f"one of {', '.join(allowed)}")


def substitute_env(path: Path, value: Any, where: str = "", env: Mapping[str, str] | None = None,
                   errors: list[str] | None = None) -> Any:
    """``${VAR}`` in every string of the parsed TOML -> the environment's value; a variable
    that is not set is an error naming the key and the variable."""
    env = os.environ if env is None else env
    errors = [] if errors is None else errors
    if isinstance(value, Mapping):
        return {k: substitute_env(path, v, f"{where}{k}.", env, errors) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(path, v, f"{where[:-1]}[{i}].", env, errors)
                for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return "${"
        if m.group(1) not in env:
            errors.append(str(fail(path, where[:-1], f"${{{m.group(1)}}} is not set in the "
                                    "environment", f"the variable {m.group(1)} to be exported "
                                    "(or $${ for a literal ${)")))
            return ""
        return env[m.group(1)]

    return ENV_REF.sub(one, value)


def key_names(message: str) -> str:
    """An output's error names command-line flags; a config's reader wants its own keys."""
    for flag, key in FLAG_KEYS.items():
        message = re.sub(rf"{re.escape(flag)}(?![\w-])", key, message)
    return message


def device(path: Path, entry: str, value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise fail(path, entry, f"{value!r}", "a device index or a name/URL string")
    return parse_device(value)


def file_path(path: Path, entry: str, value: Any) -> Path:
    typed(path, entry, value, (str,), "a file path (string)")
    p = Path(value).expanduser()
    return p if p.is_absolute() else path.parent / p
