"""What a site's automations expect of the bundle: ``classes = [...]`` in a serve config.

Home Assistant automations, MQTT subscribers and dashboards match labels by name: a bundle
trained on other places, or with a class renamed, would run and publish labels nothing listens
for. ``classes`` at the top of the config states the names every stream's automations expect;
``classes`` in ``[streams.NAME]`` states that stream's own. ``avstream serve`` (and ``--check``)
compares them with the bundle's manifest before any stream starts, as sets (the order of the
outputs is the bundle's business), and refuses a bundle that differs: one line per stream naming
the bundle, the classes it lacks and those nobody expects (exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avstream.serve.toml_values import fail

EXAMPLE = '["kitchen", "office"]'


def expected_classes(path: Path, entry: str, value: Any) -> tuple[str, ...]:
    """A ``classes`` value: a non-empty list of distinct, non-empty names."""
    if not (isinstance(value, list) and value and all(isinstance(c, str) and c for c in value)):
        raise fail(path, entry, f"{value!r}", f"a non-empty list of class names ({EXAMPLE})")
    twice = sorted({c for c in value if value.count(c) > 1})
    if twice:
        raise fail(path, entry, f"{twice[0]!r} listed more than once", "each class once")
    return tuple(value)


def _names(classes: list[str]) -> str:
    return ", ".join(classes) or "none"


def class_mismatches(path: Path, model: Path, bundle_classes: tuple[str, ...],
                     expected: Mapping[str, tuple[str, ...] | None]) -> list[str]:
    """One line per stream (name -> the classes it expects, None: unchecked) whose expected
    classes differ from the bundle's."""
    errors = []
    for name, want in expected.items():
        if want is None:
            continue
        missing = [c for c in want if c not in bundle_classes]
        unexpected = [c for c in bundle_classes if c not in want]
        if missing or unexpected:
            errors.append(str(fail(
                path, f"streams.{name}",
                f"bundle {model} does not have the classes the stream expects: missing "
                f"{_names(missing)}; unexpected {_names(unexpected)}",
                f"a bundle with exactly the classes {_names(list(want))} (export one trained on "
                f"them, or correct classes)")))
    return errors


def bundle_mismatches(path: Path, model: Path,
                      expected: Mapping[str, tuple[str, ...] | None]) -> list[str]:
    """``class_mismatches`` against the bundle's manifest (read only when some stream states
    its classes; a bad bundle raises BundleError, one line)."""
    if all(want is None for want in expected.values()):
        return []
    from avstream.bundle.loader import read_manifest

    manifest, _ = read_manifest(model)
    return class_mismatches(path, model, manifest.classes, expected)
