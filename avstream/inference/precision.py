"""Which of a bundle's precisions runs: ``--precision auto|fp32|int8|fp16``.

A bundle ships fp32 graphs and, optionally, int8 (static QDQ, measured against PyTorch) and
fp16 ones. ``auto`` picks what suits the provider that will run: int8 on the CPU, fp16 on CUDA,
fp32 when the bundle has no such graphs. A precision asked for by name that the bundle does not
ship is an error naming the ones it does, never a quiet substitute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from avstream.bundle.loader import Bundle
from avstream.errors import BundleError
from avstream.inference.session import CUDA, resolve_providers

AUTO = "auto"
PRECISIONS: tuple[str, ...] = ("fp32", "int8", "fp16")
CHOICES: tuple[str, ...] = (AUTO, *PRECISIONS)
AUTO_BY_PROVIDER: dict[str, str] = {CUDA: "fp16"}
"""First provider -> the precision ``auto`` prefers there; every other provider prefers int8."""
AUTO_DEFAULT = "int8"


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    graph_paths: dict[str, Path]
    """Graph name -> the ONNX file that runs at this precision."""
    reason: str
    """Why it was chosen, in words (for the start-up line)."""


def choose_precision(bundle: Bundle, precision: str, provider: str | None) -> PrecisionChoice:
    """Resolve ``precision`` against what ``bundle`` ships and the provider that will run."""
    if precision not in CHOICES:
        raise BundleError(f"precision {precision!r}; expected one of {list(CHOICES)}")
    have = bundle.precisions()
    if precision != AUTO:
        if precision not in have:
            raise BundleError(f"{bundle.root}: has no {precision} graphs (it ships "
                              f"{', '.join(have)}); expected --precision "
                              f"{' or '.join([AUTO, *have])}")
        return PrecisionChoice(precision, have[precision], "requested")
    first = resolve_providers(provider)[0][0] if ort.get_available_providers() else ""
    preferred = AUTO_BY_PROVIDER.get(first, AUTO_DEFAULT)
    if preferred in have:
        return PrecisionChoice(preferred, have[preferred], f"auto: {preferred} on {first}")
    fallback = "fp32" if "fp32" in have else next(iter(have))
    return PrecisionChoice(fallback, have[fallback],
                           f"auto: the bundle has no {preferred} graphs for {first}")
