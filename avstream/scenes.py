"""Scene class names: TAU Urban Audio-Visual Scenes 2021's ten, and the rule any class name follows.

``SCENES`` is TAU's label set in alphabetical order (the DCASE submission order), the default of
the paper's recipe. A bundle carries its own class list (manifest ``classes``): everything
downstream takes the classes from the bundle, never from here.

A class name of a dataset of one's own places becomes a folder name, a JSON value, an MQTT
topic part and a Home Assistant option, so it is held to ``[a-z0-9_]+`` (at most
``MAX_NAME_CHARS``): no ``/``, spaces, dots or upper case, which one of those would mangle.
"""

import re
from collections.abc import Mapping
from typing import Any, Final

SCENES: Final[tuple[str, ...]] = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)
UNKNOWN: Final[str] = "unknown"

NAME_RULE: Final[str] = "[a-z0-9_]+"
MAX_NAME_CHARS: Final[int] = 64
_NAME: Final[re.Pattern[str]] = re.compile(NAME_RULE)


def scene_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a class name (one phrase), or None when it can."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"has {len(name)} characters"
    if name == UNKNOWN:
        return f"is reserved ({UNKNOWN!r} is what the daemon says when it is unsure)"
    if not _NAME.fullmatch(name):
        bad = sorted({c for c in name if not _NAME.fullmatch(c)})
        return "contains " + ", ".join(repr(c) for c in bad)
    return None


def check_scene_name(name: str, where: str) -> str:
    """``name`` unchanged, or ValueError with one line: where it came from, what is wrong, and
    the rule (lower-case letters, digits and _, at most MAX_NAME_CHARS)."""
    problem = scene_name_problem(name)
    if problem is not None:
        raise ValueError(f"{where}: scene name {name!r} {problem}; expected {NAME_RULE} "
                         f"(lower-case letters, digits and _, at most {MAX_NAME_CHARS} characters)")
    return name


SYNTHETIC: Final[str] = "synthetic"
SYNTHETIC_CITY_PREFIX: Final[str] = "synthcity"
"""training/synth names its cities synthcity1..3; bundles exported before the manifest said
``training_data.kind`` are recognised by their validation locations."""


def training_kind(training_data: Mapping[str, Any]) -> str | None:
    """"tau", "synthetic" or "own" from a manifest's ``provenance.training_data``; None if it
    does not say (a bundle from before ``kind`` was recorded, not trained on the synthetic set)."""
    kind = training_data.get("kind")
    if isinstance(kind, str):
        return kind
    validation = training_data.get("validation")
    locations = validation.get("locations") if isinstance(validation, Mapping) else None
    if locations and all(str(loc).startswith(SYNTHETIC_CITY_PREFIX) for loc in locations):
        return SYNTHETIC
    return None


def trained_on_warning(training_data: Mapping[str, Any]) -> str | None:
    """The start-up sentence of a live run whose model knows only synthetic scenes, else None."""
    if training_kind(training_data) != SYNTHETIC:
        return None
    return ("note: this model was trained on synthetic scenes only; its labels mean nothing for "
            "a real place. Train one on your own places: python -m training recipe --preset lite "
            "--data DATASET (docs/own-places.md)")


def mono_input_warning(training_data: Mapping[str, Any], input_channels: int | None,
                       model_channels: int) -> str | None:
    """The start-up sentence of a run that feeds a mono input to a stereo model whose manifest
    says it never saw mono audio (``training_data.mono_share`` 0), else None. The down-mix
    removes the inter-channel cues such a model may lean on: on the synthetic set a small model
    fell from 1.000 fed stereo to 0.600 fed mono, and one trained on half mono examples (the
    default of every recipe but the paper's) held 0.995 (docs/training.md). Bundles that do not
    record the share say nothing."""
    if input_channels != 1 or model_channels < 2 or training_data.get("mono_share") != 0:
        return None
    return ("note: the microphone is mono and this model was trained on stereo audio only; fed "
            "mono its labels may be much worse (docs/training.md, mono microphones). Retrain it "
            "with the lite, small or demo recipe, which train on half mono examples by default, "
            "or with --mono-share 0.5")

