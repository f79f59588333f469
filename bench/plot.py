"""The hop latency distribution per variant as a PNG (matplotlib, Agg: no display needed).

    python -m bench.plot LATENCY_JSON [-o bench/hop_latency.png]

LATENCY_JSON is what ``bench/latency.py --out`` wrote; its ``hop_samples_ms`` holds every timed
hop of every variant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PNG = Path(__file__).resolve().parent / "hop_latency.png"
BINS = 80
NICE_TICKS_MS: tuple[float, ...] = tuple(m * 10.0**e for e in range(-1, 5) for m in (1, 1.5, 2, 3, 5, 7))
DPI = 120


def plot_hop_latency(report: Mapping[str, Any], path: Path) -> Path:
    """Overlaid histograms on a log time axis, p50 (dashed) and p99 (dotted) marked per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    samples: Mapping[str, Sequence[float]] = report["hop_samples_ms"]
    series = {k: np.asarray(v, dtype=np.float64) for k, v in samples.items() if len(v)}
    if not series:
        raise ValueError("the report has no hop samples; expected latency.py's JSON output")
    lo = max(min(float(v.min()) for v in series.values()), 1e-3)
    hi = max(float(v.max()) for v in series.values())
    bins = np.geomspace(lo * 0.95, hi * 1.05, BINS)
    fig, ax = plt.subplots(figsize=(9, 5.4))
    for i, (name, v) in enumerate(series.items()):
        color = f"C{i}"
        p50, p99 = np.percentile(v, [50, 99])
        ax.hist(v, bins=bins, histtype="step", linewidth=1.6, color=color,
                label=f"{name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms (n={v.size})")
        ax.axvline(p50, color=color, linestyle="--", linewidth=1)
        ax.axvline(p99, color=color, linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ticks = [t for t in NICE_TICKS_MS if bins[0] <= t <= bins[-1]]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("ms per hop (log scale; dashed p50, dotted p99)")
    ax.set_ylabel("hops")
    m = report.get("machine", {})
    model = report.get("model", {})
    settings = report.get("settings", {})
    ax.set_title(f"avstream hop latency, {model.get('preset', '?')} model, batch 1, "
                 f"{settings.get('intra_threads', '?')} threads\n{m.get('cpu_model', '?')}, "
                 f"{m.get('usable_cpus', '?')} cores, onnxruntime {m.get('onnxruntime', '?')}",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Plot bench/latency.py's hop latencies.")
    ap.add_argument("report", type=Path, help="JSON written by bench/latency.py --out")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_PNG)
    args = ap.parse_args(argv)
    try:
        report = json.loads(args.report.read_text(encoding="utf-8"))
        out = plot_hop_latency(report, args.out)
    except (OSError, json.JSONDecodeError, KeyError, ValueError) as e:
        print(f"bench/plot.py: {args.report}: {e}; expected the JSON of bench/latency.py --out",
              file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
