"""JSON Schemas of what avstream writes: ``hop.schema.json`` (one JSON line per window) and
``summary.schema.json`` (the exit summary of ``--summary-json``), and of what it reads:
``serve.schema.json`` (an ``avstream serve`` config, once read from TOML), shipped with the package.

``load(name)`` needs nothing beyond the standard library. ``validator(name)`` needs the
``jsonschema`` package (the ``dev`` extra) and also checks the schemas' own keyword
``x-decimals`` (a number has at most that many decimals), which standard validators ignore.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

HOP = "hop"
SUMMARY = "summary"
SERVE = "serve"
NAMES: tuple[str, ...] = (HOP, SUMMARY, SERVE)
DECIMALS_KEYWORD = "x-decimals"


@cache
def _text(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"schema {name!r}; expected one of {list(NAMES)}")
    return resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")


def load(name: str) -> dict[str, Any]:
    """The schema ``name`` (hop or summary) as a dict (a fresh copy each call)."""
    return json.loads(_text(name))


def has_decimals(x: float, decimals: int) -> bool:
    """True if ``x`` is written with at most ``decimals`` decimals (as round() leaves it)."""
    return round(x, decimals) == x


def validator(name: str) -> Any:
    """A jsonschema validator for ``name`` that resolves the schemas' cross references and
    enforces ``x-decimals``; its ``iter_errors(obj)`` lists every violation."""
    import jsonschema
    from referencing import Registry, Resource

    def decimals(validator: Any, n: int, instance: Any, schema: dict[str, Any]) -> Any:
        if isinstance(instance, float) and not has_decimals(instance, n):
            yield jsonschema.ValidationError(f"{instance!r} has more than {n} decimals")

    base = jsonschema.Draft202012Validator
    cls = jsonschema.validators.extend(base, {DECIMALS_KEYWORD: decimals})
    schemas = [load(n) for n in NAMES]
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas)
    return cls(load(name), registry=registry, format_checker=base.FORMAT_CHECKER)
