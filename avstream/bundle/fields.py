"""Typed getters for a JSON object read from a bundle: each returns the value or raises
``ManifestError`` naming the dotted field path, what it was and what was expected."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from avstream.bundle.manifest import ManifestError


def frozen(v: Any) -> Any:
    if isinstance(v, Mapping):
        return MappingProxyType({k: frozen(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(frozen(x) for x in v)
    return v


def obj(d: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ManifestError(f"field '{path}' is {type(d).__name__}; expected an object")
    return d


def get(d: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in d:
        where = f"'{path}'" if path else "the top level"
        raise ManifestError(f"field '{key}' is missing from {where}")
    return d[key]


def field_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def integer(d: Mapping[str, Any], key: str, path: str = "", minimum: int = 1) -> int:
    v = get(d, key, path)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ManifestError(f"field '{field_path(path, key)}' is {v!r}; expected an integer >= {minimum}")
    return v


def real(d: Mapping[str, Any], key: str, path: str = "", optional: bool = False) -> float | None:
    v = get(d, key, path)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ManifestError(f"field '{field_path(path, key)}' is {v!r}; expected a number")
    return float(v)


def number(d: Mapping[str, Any], key: str, path: str) -> float:
    v = real(d, key, path)
    if v is None:  # unreachable: _float returns None only when optional
        raise ManifestError(f"field '{field_path(path, key)}' is null; expected a number")
    return v


def string(d: Mapping[str, Any], key: str, path: str = "", choices: tuple[str, ...] = ()) -> str:
    v = get(d, key, path)
    if not isinstance(v, str):
        raise ManifestError(f"field '{field_path(path, key)}' is {v!r}; expected a string")
    if choices and v not in choices:
        raise ManifestError(f"field '{field_path(path, key)}' is {v!r}; expected one of {list(choices)}")
    return v


def file_name(v: Any, path: str) -> str:
    if not isinstance(v, str) or not v or "/" in v or "\\" in v or v in (".", ".."):
        raise ManifestError(f"field '{path}' is {v!r}; expected a plain file name inside the bundle")
    return v
