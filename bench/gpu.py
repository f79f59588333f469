"""Everything worth knowing about this project on one GPU, in one command of under 8 minutes.

    python -m bench.gpu [--json] [--out FILE] [--bundle BUNDLE]

A GPU may be lent for minutes, not hours, so the measurement is prepared: each part below runs
in its own child process with its own time limit (a crash or hang in one is reported, the
others still run), all of them within ``TOTAL_LIMIT_S``:

1. ``bundle``: ``--bundle``, or the paper architecture from random weights exported as fp32
   with fp16 beside it (no training: speed does not depend on the weights; cached).
2. ``ort_frames``: frame encode ms at batch 1/8/32, fp32 and fp16, ONNX Runtime's CUDA
   provider with IO binding (the daemon's own ``GraphSession``).
3. ``delay``: label delay p50/p99 of one live-paced stream through the daemon's pipeline.
4. ``streams``: the most live-paced streams one ``avstream serve`` process holds
   (bench/streams.py's rule, short recordings).
5. ``train``: the paper preset's training step: examples/s and peak GPU memory.
6. ``torch_branches``: the three graphs as PyTorch modules on CUDA, fp32 / fp16 autocast /
   bf16 autocast, batch 1/8/32: a GPU figure even where onnxruntime-gpu is not installed
   (a host that brings its own CUDA PyTorch and installs this project with ``--no-deps``).

A part that cannot measure here says why (``skipped``); one that fails says how (``failed``).
On a machine without a GPU the script prints one line saying so and exits 0 (CI runs that).
``--device cpu`` runs every part on the CPU instead: a check of the script itself, whose
figures are not GPU figures. docs/gpu.md says what to install and how to read the output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOTAL_LIMIT_S = 450.0
"""7.5 minutes for all parts: the command must finish in under 8 on one GPU."""
PART_LIMIT_S: dict[str, float] = {"bundle": 210.0, "ort_frames": 45.0, "delay": 45.0,
                                  "streams": 120.0, "train": 45.0, "torch_branches": 75.0}
"""Each part's own limit; a part also never runs past what is left of TOTAL_LIMIT_S."""
MIN_PART_S = 10.0
"""A part with less time left than this is skipped, not started."""
NEEDS_BUNDLE: frozenset[str] = frozenset({"ort_frames", "delay", "streams"})
SMI_TIMEOUT_S = 20.0
DEFAULT_MAX_STREAMS = 64
TORCH_RUNS = 20
REASON_CHARS = 400
TERM_GRACE_S = 10.0
"""After its limit a part gets SIGTERM and this long to write its partial result."""


class TimeUp(BaseException):
    """Raised in a part's process by SIGTERM: its limit is reached (a BaseException, so that a
    part's own ``except Exception`` around one measurement does not swallow it)."""


def detect_gpus() -> tuple[list[str], str]:
    """The GPUs this machine has, and how that was found (nvidia-smi, else torch)."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            r = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version",
                                "--format=csv,noheader"], capture_output=True, text=True,
                               timeout=SMI_TIMEOUT_S)
            names = [line.strip() for line in r.stdout.splitlines() if line.strip()]
            if r.returncode == 0 and names:
                return names, "nvidia-smi"
        except (OSError, subprocess.TimeoutExpired):
            pass
    try:
        import torch
    except ImportError:
        return [], "no nvidia-smi, no torch"
    if torch.cuda.is_available():
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())], "torch"
    return [], f"no nvidia-smi GPU; torch {torch.__version__} sees no CUDA device"


def versions() -> dict[str, str | None]:
    """What the figures were measured with; a missing package is None."""
    import importlib.metadata as md
    import platform

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("torch", "onnxruntime", "onnxruntime-gpu", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _reason(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "no output")[:REASON_CHARS]


def run_part(name: str, args: argparse.Namespace, bundle: str | None, limit_s: float
             ) -> dict[str, Any]:
    """``name`` in a child process bounded by ``limit_s``; its result, or why there is none."""
    with tempfile.TemporaryDirectory(prefix="avstream-gpu-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "bench.gpu", "--part", name, "--result", str(result),
               "--device", args.device, "--config", args.config,
               "--max-streams", str(args.max_streams), "--torch-runs", str(args.torch_runs),
               "--part-seconds", f"{limit_s:.1f}"]
        if bundle is not None:
            cmd += ["--bundle", bundle]
        if args.cache is not None:
            cmd += ["--cache", str(args.cache)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:  # SIGTERM: the part writes what it has measured
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                return {"status": "failed", "reason": f"did not finish within its "
                        f"{limit_s:.0f} s", "seconds": round(time.monotonic() - t0, 1)}
        seconds = round(time.monotonic() - t0, 1)
        if not result.is_file():
            return {"status": "failed", "seconds": seconds,
                    "reason": f"exit {proc.returncode}: {_reason(err)}"}
        return {**json.loads(result.read_text(encoding="utf-8")), "seconds": seconds}


def figures(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers, lifted out of the parts (None where a part did not measure)."""
    def ok(name: str) -> dict[str, Any]:
        p = parts.get(name, {})
        return p if p.get("status") in ("ok", "partial") else {}

    frames = {prec: {b: row.get(f"batch_{b}_ms", {}).get("p50") for b in (1, 8, 32)}
              for prec, row in ok("ort_frames").items() if isinstance(row, dict) and
              "providers_run" in row}
    return {"ort_frame_encode_ms_p50": frames or None,
            "delay_p50_ms": ok("delay").get("delay_p50_ms"),
            "delay_p99_ms": ok("delay").get("delay_p99_ms"),
            "most_streams_one_serve": ok("streams").get("most_streams"),
            "train_examples_per_s": ok("train").get("examples_per_s"),
            "train_peak_memory_mb": ok("train").get("peak_memory_mb")}


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.monotonic()
    deadline = t0 + TOTAL_LIMIT_S
    parts: dict[str, dict[str, Any]] = {}
    bundle = None if args.bundle is None else str(args.bundle)
    for name in PART_LIMIT_S:
        if name not in args.parts:
            parts[name] = {"status": "skipped", "reason": "not in --parts"}
            continue
        left = deadline - time.monotonic()
        if left < MIN_PART_S:
            parts[name] = {"status": "skipped", "reason": f"no time left of {TOTAL_LIMIT_S:.0f} s"}
            continue
        if name in NEEDS_BUNDLE and bundle is None:
            parts[name] = {"status": "skipped", "reason": "no bundle: "
                           + parts["bundle"].get("reason", "?")}
            continue
        parts[name] = run_part(name, args, bundle, min(PART_LIMIT_S[name], left))
        if name == "bundle":
            bundle = parts[name].get("bundle")
    return {"device": args.device, "figures": figures(parts), "parts": parts,
            "not_measured": [f"{n}: {p['status']}: {p['reason']}" for n, p in parts.items()
                             if p["status"] != "ok"],
            "versions": versions(), "wall_s": round(time.monotonic() - t0, 1)}


def render(report: dict[str, Any]) -> str:
    lines = [f"GPU: {', '.join(report['gpus'])} ({report['found_by']}); device {report['device']}; "
             f"{report['versions']}; {report['wall_s']} s"]
    for k, v in report["figures"].items():
        lines.append(f"  {k}: {v}")
    for line in report["not_measured"]:
        lines.append(f"  not measured: {line}")
    return "\n".join(lines)


def child(args: argparse.Namespace) -> int:
    """``--part NAME``: run one part, write its result to ``--result``."""
    import traceback

    from bench.gpu_parts import PARTS, Skipped

    args.deadline = time.monotonic() + args.part_seconds
    args.partial = {}  # what a part measured so far, for a partial result at its time limit

    def time_up(signum: int, frame: object) -> None:
        raise TimeUp()

    signal.signal(signal.SIGTERM, time_up)
    try:
        out = {"status": "ok", **PARTS[args.part](args)}
    except TimeUp:
        out = {"status": "partial", "reason": f"stopped at its {args.part_seconds:.0f}-s limit",
               **args.partial}
    except Skipped as e:
        out = {"status": "skipped", "reason": str(e)}
    except Exception as e:  # a part's failure is its report, never the whole run's
        traceback.print_exc()
        out = {"status": "failed", "reason": _reason(f"{type(e).__name__}: {e}")}
    Path(args.result).write_text(json.dumps(out, default=str), encoding="utf-8")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    ap.add_argument("--bundle", type=Path, help="time this bundle (default: the paper "
                    "architecture from random weights, fp32 + fp16, built and cached)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: run every part on the CPU to check the script (not GPU figures)")
    ap.add_argument("--config", default="paper", help="model preset of the built bundle, the "
                    "training step and the torch modules (default paper)")
    ap.add_argument("--max-streams", type=int, default=DEFAULT_MAX_STREAMS)
    ap.add_argument("--max-batch-wait-ms", type=float, default=2.0,
                    help="the serve config's max_batch_wait_ms (default 2: on a GPU a batch pays)")
    ap.add_argument("--torch-runs", type=int, default=TORCH_RUNS,
                    help="timed runs per torch module, mode and batch")
    ap.add_argument("--cache", type=Path, help="bundle and recording cache "
                    "(default ~/.cache/avstream/bench)")
    ap.add_argument("--parts", type=lambda s: [p.strip() for p in s.split(",") if p.strip()],
                    default=list(PART_LIMIT_S),
                    help=f"which parts to run, comma-separated (default all: "
                         f"{','.join(PART_LIMIT_S)}); the bundle part is needed by "
                         f"{','.join(sorted(NEEDS_BUNDLE))} unless --bundle is given")
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--part-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    unknown = [p for p in args.parts if p not in PART_LIMIT_S]
    if unknown:
        ap.error(f"--parts names {unknown}; expected names from {list(PART_LIMIT_S)}")
    if args.max_streams < 1 or args.torch_runs < 1:
        ap.error(f"--max-streams {args.max_streams}, --torch-runs {args.torch_runs}; "
                 f"expected both >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.part is not None:
        return child(args)
    gpus, found_by = (["none (--device cpu)"], "asked") if args.device == "cpu" else detect_gpus()
    if not gpus:
        line = f"bench/gpu.py: no GPU on this machine ({found_by}); nothing measured"
        print(json.dumps({"gpus": [], "reason": line}) if args.json else line)
        return 0
    report = {"gpus": gpus, "found_by": found_by, **run(args)}
    text = json.dumps(report, indent=2, default=str)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
