"""Which of a bundle's precisions runs each graph: ``--precision auto|fp32|int8|fp16``.

A bundle ships fp32 graphs and, optionally, int8 (static QDQ, measured against PyTorch) and
fp16 ones. A precision asked for by name runs all three graphs; one the bundle does not ship
is an error naming the ones it does, never a quiet substitute.

``auto`` picks per graph, because a reduced precision is not faster everywhere (on a 2-core
x86 CPU the paper model's int8 frame encoder is 2.4x faster than fp32, its int8 audio graph
1.6x slower):

- when the manifest has timings measured on the provider that will run (export/timing.py),
  each graph runs in the fastest precision among those whose label agreement with PyTorch is
  at least ``MIN_AUTO_AGREEMENT``; a precision other than the bundle's main one must be at
  least ``MIN_AUTO_GAIN`` faster than the main one's graph, and a graph the variant keeps in
  the main precision (the head of the int8 and fp16 variants stays fp32) is never taken from
  it: timing noise between two copies of one graph does not decide. On a CPU this gives e.g.
  int8 frame encoder, fp32 audio graph and head.
- otherwise (a bundle exported before timings, or timings from another provider): the
  precision that suits the provider for all graphs, int8 on the CPU, fp16 on CUDA, the main
  precision when the bundle has no such graphs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from avstream.bundle import schema
from avstream.bundle.loader import Bundle
from avstream.bundle.manifest import Manifest
from avstream.errors import BundleError
from avstream.inference.session import CUDA, resolve_providers

AUTO = schema.AUTO
PRECISIONS = schema.PRECISIONS
CHOICES: tuple[str, ...] = (AUTO, *PRECISIONS)
AUTO_BY_PROVIDER: dict[str, str] = {CUDA: "fp16"}
"""First provider -> the precision ``auto`` prefers there without timings; every other
provider prefers int8."""
AUTO_DEFAULT = "int8"
MIN_AUTO_AGREEMENT = 0.95
"""Share of evaluation windows whose top label must equal PyTorch fp32's (the variant's own
measurement) for ``auto`` to use an extra precision by its timings; the main precision is always
eligible: it is what was exported."""
MIN_AUTO_GAIN = 0.10
"""A graph runs in a non-main precision only when that is at least 10 % faster (median ms)."""


@dataclass(frozen=True)
class PrecisionChoice:
    graphs: Mapping[str, str]
    """Graph name -> the precision it runs in."""
    graph_paths: Mapping[str, Path]
    """Graph name -> the ONNX file that runs."""
    reason: str
    """Why it was chosen, in words (for the start-up line and ``avstream info``)."""

    @property
    def precision(self) -> str:
        """One short name for callers to print: ``int8``, or ``auto: frame int8, audio fp32,
        head fp32`` when the graphs differ."""
        used = set(self.graphs.values())
        if len(used) == 1:
            return next(iter(used))
        return f"{AUTO}: " + ", ".join(f"{g} {self.graphs[g]}" for g in _ORDER if g in self.graphs)


_ORDER: tuple[str, ...] = (schema.FRAME_GRAPH, schema.AUDIO_GRAPH, schema.HEAD_GRAPH)
"""The order graphs are named in to users: the per-frame encoder first, then per window."""


def first_provider(provider: str | None) -> str:
    """The provider the sessions will try first (``--provider``, else CUDA then CPU)."""
    return resolve_providers(provider)[0][0] if ort.get_available_providers() else ""


def auto_by_timings(manifest: Manifest, provider: str) -> tuple[dict[str, str], str] | None:
    """Graph -> precision by the manifest's timings, and why; None when they do not apply."""
    t = manifest.timings
    if t is None or t.provider != provider:
        return None
    main = manifest.variant
    eligible = [p for p, v in manifest.variants.items()
                if v.quantization.label_agreement >= MIN_AUTO_AGREEMENT]
    picks = {}
    for graph in schema.GRAPHS:
        ms = t.median_ms.get(graph, {})
        best = main
        for p in eligible:
            differs = manifest.variants[p].graphs[graph].precision != manifest.graphs[graph].precision
            if differs and p in ms and main in ms and ms[p] < ms[best] \
                    and ms[p] <= (1 - MIN_AUTO_GAIN) * ms[main]:
                best = p
        picks[graph] = best
    return picks, (f"auto: the fastest per graph at agreement >= {MIN_AUTO_AGREEMENT:g}, timed at "
                   f"export on {t.provider} ({t.cpu})")


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
        return _uniform(have, precision, "requested")
    first = first_provider(provider)
    timed = auto_by_timings(bundle.manifest, first)
    if timed is not None:
        picks, reason = timed
        return PrecisionChoice(picks, {g: have[p][g] for g, p in picks.items()}, reason)
    preferred = AUTO_BY_PROVIDER.get(first, AUTO_DEFAULT)
    if preferred in have:
        return _uniform(have, preferred, f"auto: {preferred} on {first}")
    fallback = "fp32" if "fp32" in have else next(iter(have))
    return _uniform(have, fallback, f"auto: the bundle has no {preferred} graphs for {first}")


def _uniform(have: Mapping[str, Mapping[str, Path]], precision: str, reason: str) -> PrecisionChoice:
    paths = have[precision]
    return PrecisionChoice({g: precision for g in paths}, dict(paths), reason)
