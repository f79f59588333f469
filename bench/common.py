"""What both benchmarks share: the machine they ran on, percentiles, and the bundles they time.

The paper model's speed does not depend on its weights (the same layers, shapes and operators
run whatever the numbers are), so by default the benchmarks time an *untrained* paper-size
model: ``torch.manual_seed(0)``, saved as a checkpoint, exported by the project's own
``export_bundle`` as fp32 and int8. Everything is cached under ``~/.cache/avstream/bench``
(``AVSTREAM_BENCH_CACHE`` or ``--cache`` to move it) and rebuilt only when missing.

int8 needs calibration windows: a tiny synthetic TAU-layout set (2 clips per class of 2 s) is
written for it, and only ``CALIBRATION_WINDOWS`` windows are used, because preparing a
224-px window costs ~0.6 s on 2 cores. Calibration quality changes int8's accuracy, not its
speed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from avstream.bundle import schema
from avstream.bundle.loader import load_bundle
from avstream.errors import AvstreamError
from avstream.inference.machine import cpu_model, cpuinfo
from avstream.inference.session import CPU, CUDA, default_intra_threads, usable_cpus

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path.home() / ".cache" / "avstream" / "bench"
CACHE_ENV = "AVSTREAM_BENCH_CACHE"
CONFIG_NAMES: tuple[str, ...] = ("paper", "small", "demo", "lite")
"""Presets the benchmarks build untrained (``lite`` needs the ``lite`` extra's ImageNet weights)."""
MODEL_SEED = 0
"""torch.manual_seed for the untrained benchmark model: the same graphs every time."""
CALIBRATION_SEED = 4242
CALIBRATION_CLIPS_PER_CLASS = 2
CALIBRATION_CLIP_SECONDS = 2
CALIBRATION_WINDOWS = 16
"""int8 calibration windows: few, because a 224-px window takes ~0.6 s to prepare on 2 cores."""
EVALUATION_WINDOWS = 16
"""Windows the exporter's int8 parity check runs on (the tiny set has 20 in its evaluate split)."""
PROVIDER_VARIANTS: dict[str, tuple[str, ...]] = {CPU: ("fp32", "int8"), CUDA: ("fp32", "fp16")}
"""The variants worth timing on each provider: int8 kernels are a CPU feature, fp16 a GPU one."""
PROVIDER_SHORT: dict[str, str] = {CPU: "cpu", CUDA: "cuda"}
PERCENTILES: tuple[int, ...] = (50, 95, 99)
REPORTED_CPU_FLAGS: tuple[str, ...] = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni",
                                       "avx512_bf16", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class MachineInfo:
    """Where the figures came from, echoed in every JSON output and in RESULTS.md."""

    cpu_model: str
    cpu_flags: tuple[str, ...]
    """The vector extensions that decide which kernels ONNX Runtime and PyTorch pick."""
    cpu_count: int
    usable_cpus: int
    ort_threads: int
    """Intra-op threads the daemon's sessions use by default on this machine."""
    onnxruntime: str
    providers_available: tuple[str, ...]
    python: str
    platform: str
    load_avg_1_5_15: tuple[float, float, float] | None
    """At the start of the run: other processes sharing the cores slow every figure."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_flags() -> tuple[str, ...]:
    flags = set((cpuinfo("flags") or "").split())
    return tuple(f for f in REPORTED_CPU_FLAGS if f in flags)


def load_average() -> tuple[float, float, float] | None:
    """1/5/15-minute load averages; on 2 shared cores anything above ~1 slows every figure."""
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def machine_info() -> MachineInfo:
    return MachineInfo(
        cpu_model=cpu_model(),
        cpu_flags=cpu_flags(),
        cpu_count=os.cpu_count() or 1,
        usable_cpus=usable_cpus(),
        ort_threads=default_intra_threads(),
        onnxruntime=ort.__version__,
        providers_available=tuple(ort.get_available_providers()),
        python=platform.python_version(),
        platform=platform.platform(),
        load_avg_1_5_15=load_average(),
    )


def timed_providers(only: str | None = None) -> list[str]:
    """Providers this onnxruntime offers among those the benchmark knows how to time."""
    available = ort.get_available_providers()
    wanted = [p for p in PROVIDER_VARIANTS if p in available]
    if only is not None:
        name = {"cpu": CPU, "cuda": CUDA}.get(only.lower(), only)
        if name not in available:
            raise AvstreamError(f"provider {only!r} is not available in this onnxruntime; "
                                f"available: {available}")
        if name not in PROVIDER_VARIANTS:
            raise AvstreamError(f"provider {only!r}; the benchmark times one of "
                                f"{[PROVIDER_SHORT[p] for p in PROVIDER_VARIANTS]}")
        wanted = [name]
    return wanted


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    """p50/p95/p99 (linear interpolation), mean, min, max and n of a list of milliseconds."""
    a = np.asarray(list(values), dtype=np.float64)
    if a.size == 0:
        return {"n": 0, **{f"p{q}": None for q in PERCENTILES}, "mean": None, "min": None,
                "max": None}
    out: dict[str, float | int | None] = {"n": int(a.size)}
    for q in PERCENTILES:
        out[f"p{q}"] = round(float(np.percentile(a, q)), 4)
    out["mean"] = round(float(a.mean()), 4)
    out["min"] = round(float(a.min()), 4)
    out["max"] = round(float(a.max()), 4)
    return out


def cache_root(cache: Path | None) -> Path:
    if cache is not None:
        return Path(cache)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else DEFAULT_CACHE


def bundle_ok(path: Path) -> bool:
    if not (path / schema.MANIFEST_NAME).is_file():
        return False
    try:
        load_bundle(path)
    except AvstreamError as e:
        log.warning("cached bundle %s is unusable (%s); rebuilding it", path, e)
        return False
    return True


def untrained_checkpoint(config_name: str, root: Path) -> Path:
    """The untrained checkpoint of ``config_name`` (built once, then reused)."""
    import torch

    from training.checkpoint import Checkpoint, save_checkpoint
    from training.config import preset
    from training.model import AVSceneNet

    path = root / config_name / "untrained.ckpt"
    if path.is_file():
        return path
    cfg = preset(config_name)
    torch.manual_seed(MODEL_SEED)
    model = AVSceneNet(cfg).eval()
    log.info("writing an untrained %s checkpoint to %s", config_name, path)
    save_checkpoint(path, Checkpoint(
        config=cfg, state_dict=model.state_dict(), step="untrained",
        metrics={}, data={"note": f"untrained, torch.manual_seed({MODEL_SEED}): for timing only"},
    ))
    return path


def _calibration_set(root: Path) -> Path:
    """A tiny synthetic TAU-layout folder for int8 calibration (written once)."""
    from training.synth.dataset import write_synthetic_dataset

    data = root / "calibration-data"
    done = root / "calibration-data.done"
    if not done.is_file():
        log.info("writing the synthetic calibration set to %s", data)
        write_synthetic_dataset(data, clips_per_class=CALIBRATION_CLIPS_PER_CLASS,
                                seed=CALIBRATION_SEED, seconds=CALIBRATION_CLIP_SECONDS)
        done.write_text("ok\n", encoding="utf-8")
    return data


def prepare_bundle(config_name: str, variant: str, cache: Path | None = None,
                   extra: tuple[str, ...] = ()) -> Path:
    """A verified bundle of the untrained ``config_name`` model in ``variant``, with the
    ``extra`` precisions beside it (cached)."""
    if config_name not in CONFIG_NAMES:
        raise AvstreamError(f"config {config_name!r}; expected one of {list(CONFIG_NAMES)}")
    precisions = (variant, *extra)
    if not set(precisions) <= set(schema.PRECISIONS):
        raise AvstreamError(f"precisions {list(precisions)}; expected names from "
                            f"{list(schema.PRECISIONS)}")
    root = cache_root(cache)
    out = root / config_name / "+".join(precisions)
    if bundle_ok(out):
        return out
    from export.bundle_writer import ExportOptions, export_bundle

    ckpt = untrained_checkpoint(config_name, root)
    data = _calibration_set(root) if "int8" in precisions else None
    options = ExportOptions(
        variant=variant, extra=extra, data_dir=data, calibration_windows=CALIBRATION_WINDOWS,
        evaluation_windows=EVALUATION_WINDOWS,
        cache_dir=None if data is None else root / f"calibration-cache-{config_name}",
        force=True,
    )
    log.info("exporting the %s %s bundle to %s", config_name, "+".join(precisions), out)
    export_bundle(ckpt, out, options)
    return out


def bundle_config(bundle_dir: Path) -> dict[str, Any]:
    """The ModelConfig (as a dict) a bundle's manifest records: enough to rebuild its torch twin."""
    return dict(load_bundle(bundle_dir).manifest.provenance.config)


def write_json(data: Mapping[str, Any], path: Path | None) -> str:
    text = json.dumps(data, indent=2, allow_nan=False, default=_plain)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")
    return text


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN: a figure that could not be measured is null."""
    if x is None or not math.isfinite(x):
        return None
    return x


def fmt_ms(x: float | int | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def fmt_list(xs: Sequence[float | int | None]) -> str:
    """Milliseconds per round, one decimal: [14.2, 60.3, -]."""
    return "[" + ", ".join("-" if x is None else f"{x:.1f}" for x in xs) + "]"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table (the benchmark prints for people and for logs alike)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def bench_main(script: str, args: Any, run: Callable[[Any], dict[str, Any]],
               render: Callable[[dict[str, Any]], str],
               after: Callable[[dict[str, Any]], None] | None = None) -> int:
    """The shared ``main()`` of the bench scripts: logging, run, JSON to ``--out``, then JSON or
    a table on stdout; a user's mistake (AvstreamError) is one line and its exit code."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        report = run(args)
    except AvstreamError as e:
        print(f"{script}: {e}", file=sys.stderr)
        return e.exit_code
    text = write_json(report, args.out)
    if after is not None:
        after(report)
    print(text if args.json else render(report))
    return 0
