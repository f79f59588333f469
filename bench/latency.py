"""Per-hop latency of the daemon, stage by stage, against the PyTorch eager loop a user would write.

    python -m bench.latency [--json] [--config paper|small] [--model BUNDLE ...] [--iters N]

What a "hop" is here: exactly what the daemon does every 0.2 s at the default hop. The
daemon's own ``Pipeline`` (conformer, audio ring, frame store with its INTER_AREA resize,
window scheduler, ``Engine`` with its feature cache, smoother, hop record) is fed one 0.2-s
audio block at the model's rate and one new camera frame per hop, and the wall time of those
two ``feed`` calls is the hop. The stages (audio graph, frame graph on the one new frame, head
graph, smoothing) are the pipeline's own per-hop latencies; the daemon's overhead is the hop
minus the three graphs. Output sinks (JSON lines, the terminal view) are left out.

The baseline is the same hop in PyTorch eager (``AVSceneNet``: encode the new frame, reuse
the four cached features, audio branch, head) under ``torch.inference_mode`` with as many
intra-op threads as ONNX Runtime has, on the same windows. ``torch_over_ort`` is eager time
divided by ONNX Runtime time for the three graphs of a hop (p50 over p50).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avstream.bundle.loader import load_bundle
from avstream.bundle.schema import AUTO
from avstream.inference.engine import Engine
from avstream.inference.session import CPU, SessionConfig
from avstream.stream.windows import DEFAULT_HOP_MS
from bench.common import (
    CONFIG_NAMES,
    MODEL_SEED,
    PROVIDER_SHORT,
    PROVIDER_VARIANTS,
    bench_main,
    bundle_config,
    finite_or_none,
    fmt_list,
    fmt_ms,
    load_average,
    machine_info,
    percentiles,
    prepare_bundle,
    table,
    timed_providers,
)
from bench.eager import time_torch_eager
from bench.hops import CAMERA_HEIGHT, CAMERA_WIDTH, HopData, time_daemon_hops
from bench.pipelined import PAIRED_ROUNDS, pipelined_keys, time_paced_pair

log = logging.getLogger("bench.latency")

DEFAULT_ITERS = 300
DEFAULT_WARMUP = 20

@dataclass(frozen=True)
class VariantResult:
    provider: str
    variant: str
    """The --precision timed: fp32, int8, fp16, or auto (``graph_precisions`` says what ran)."""
    bundle: str
    graph_precisions: dict[str, str]
    providers_run: dict[str, tuple[str, ...]]
    threads: int
    stages: dict[str, dict[str, Any]]
    overhead_pct: float | None
    rtf: float | None
    frames_encoded_per_hop: float
    hop_samples_ms: list[float]
    pipelined: dict[str, Any] | None = None
    """The same variant at live pace with the frame encoder pipelined, and (its ``synchronous``)
    without, in alternating rounds (bench/pipelined.py)."""

    @property
    def label(self) -> str:
        return f"{PROVIDER_SHORT.get(self.provider, self.provider)} {self.variant}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider, "variant": self.variant, "bundle": self.bundle,
            "graph_precisions": self.graph_precisions,
            "providers_run": {k: list(v) for k, v in self.providers_run.items()},
            "intra_threads": self.threads, "stages_ms": self.stages,
            "overhead_pct": self.overhead_pct, "rtf": self.rtf,
            "frames_encoded_per_hop": self.frames_encoded_per_hop,
            "rtf_cpu": self.stages["rtf_cpu"],
            "pipelined": None if self.pipelined is None else
            {k: v for k, v in self.pipelined.items() if k != "delay_samples_ms"},
        }


def summarise(samples: dict[str, list[float]], frames_per_hop: float, hop_ms: int) -> tuple[
        dict[str, dict[str, Any]], float | None, float | None]:
    stages = {k: percentiles(v) for k, v in samples.items()}
    if frames_per_hop > 0:
        stages["frame_per_frame"] = percentiles(x / frames_per_hop for x in samples["frame"])
    hop_mean = float(np.mean(samples["hop"]))
    overhead_pct = finite_or_none(100.0 * float(np.mean(samples["overhead"])) / hop_mean)
    rtf = finite_or_none(hop_mean / hop_ms)  # compute seconds per second of stream
    stages["rtf_cpu"] = finite_or_none(round(float(np.mean(samples["cpu"])) / hop_ms, 4))
    return stages, overhead_pct, rtf


def time_variant(bundle_dir: Path, provider: str, threads: int, iters: int,
                 warmup: int, pipelined: bool = True, rounds: int = PAIRED_ROUNDS,
                 precision: str = AUTO) -> VariantResult:
    bundle = load_bundle(bundle_dir)
    engine = Engine(bundle, SessionConfig(provider=provider, intra_threads=threads), precision)
    ran = {p[0] for p in engine.providers.values()}
    if ran != {provider}:
        log.warning("%s: asked for %s, onnxruntime runs %s", bundle_dir, provider, ran)
    samples, per_hop = time_daemon_hops(engine, iters, warmup)
    stages, overhead_pct, rtf = summarise(samples, per_hop, DEFAULT_HOP_MS)
    paced = None
    if pipelined:
        data = HopData.make(engine.format.sample_rate, engine.format.channels, DEFAULT_HOP_MS)
        paced = time_paced_pair(engine, data, iters, warmup, DEFAULT_HOP_MS,
                                (CAMERA_WIDTH, CAMERA_HEIGHT), rounds)
    opts_threads = engine.frame.session.get_session_options().intra_op_num_threads
    return VariantResult(
        provider=provider, variant=precision, bundle=str(bundle_dir),
        graph_precisions=engine.graph_precisions,
        providers_run=engine.providers, threads=opts_threads, stages=stages,
        overhead_pct=overhead_pct, rtf=rtf, frames_encoded_per_hop=per_hop,
        hop_samples_ms=[round(x, 3) for x in samples["hop"]], pipelined=paced,
    )


def auto_keys(fp32: VariantResult, auto: VariantResult | None) -> dict[str, Any]:
    """The CPU default's (``--precision auto``) figures beside fp32's of the same run."""
    def delay(v: VariantResult | None, q: str) -> float | None:
        return None if v is None or v.pipelined is None else v.pipelined["stages_ms"]["delay"][q]

    a50, f50 = delay(auto, "p50"), delay(fp32, "p50")
    return {
        "auto_precision": None if auto is None else ", ".join(
            f"{g} {p}" for g, p in auto.graph_precisions.items()),
        "auto_hop_p50_ms": None if auto is None else auto.stages["hop"]["p50"],
        "auto_delay_p50_ms": a50, "auto_delay_p99_ms": delay(auto, "p99"),
        "auto_delay_p50_not_worse_than_fp32": None if a50 is None or f50 is None else a50 <= f50,
    }


@dataclass(frozen=True)
class Plan:
    """(provider, bundle dir, --precision) to time, and the config of the model behind them."""

    runs: list[tuple[str, Path, str]]
    config: dict[str, Any]
    source: str
    not_measured: list[str]


def plan(args: argparse.Namespace) -> Plan:
    providers = timed_providers(args.provider)
    not_measured = [f"{p}: not available in this onnxruntime (measured automatically where "
                    f"it is)" for p in PROVIDER_VARIANTS if p not in providers and args.provider is None]
    runs: list[tuple[str, Path, str]] = []
    if args.model:
        for path in args.model:
            bundle = load_bundle(path)
            shipped = list(bundle.precisions())
            for p in providers:  # each precision it ships, and auto's pick where it has a choice
                runs += [(p, Path(path), precision) for precision in
                         (*shipped, *((AUTO,) if len(shipped) > 1 else ()))]
            log.info("bundle %s: precisions %s", path, shipped)
        config = bundle_config(Path(args.model[0]))
        source = f"bundles {', '.join(str(m) for m in args.model)}"
    else:
        for p in providers:  # one bundle per provider: fp32 with its reduced precision beside
            main, *extra = PROVIDER_VARIANTS[p]
            path = prepare_bundle(args.config, main, args.cache, extra=tuple(extra))
            runs += [(p, path, precision) for precision in (*PROVIDER_VARIANTS[p], AUTO)]
        config = bundle_config(runs[0][1])
        source = f"untrained {args.config} model (torch.manual_seed({MODEL_SEED}))"
    return Plan(runs=runs, config=config, source=source, not_measured=not_measured)


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info()
    p = plan(args)
    threads = args.threads or machine.ort_threads
    results = []
    for provider, path, precision in p.runs:
        log.info("timing %s at --precision %s on %s", path, precision, provider)
        results.append(time_variant(path, provider, threads, args.iters, args.warmup,
                                    not args.no_pipelined, args.rounds, precision))
    eager = None if args.no_torch else time_torch_eager(p.config, threads, args.iters, args.warmup)

    def pick(variant: str) -> VariantResult | None:
        for provider in (CPU, *PROVIDER_VARIANTS):
            for r in results:
                if r.provider == provider and r.variant == variant:
                    return r
        return None

    primary = pick("fp32") or results[0]
    int8 = pick("int8")
    auto = pick(AUTO)
    torch_over_ort = torch_over_hop = torch_over_int8 = None
    if eager is not None and primary.provider == CPU:
        torch_p50 = eager["stages_ms"]["graphs"]["p50"]
        torch_over_ort = finite_or_none(torch_p50 / primary.stages["graphs"]["p50"])
        torch_over_hop = finite_or_none(torch_p50 / primary.stages["hop"]["p50"])
        if int8 is not None and int8.provider == CPU:
            torch_over_int8 = finite_or_none(torch_p50 / int8.stages["graphs"]["p50"])
    samples = {r.label: r.hop_samples_ms for r in results}
    samples.update({f"{r.label} pipelined (delay)": r.pipelined["delay_samples_ms"]
                    for r in results if r.pipelined is not None})
    if eager is not None:
        samples["torch eager (graphs only)"] = eager.pop("hop_samples_ms")
    return {
        "hop_p50_ms": primary.stages["hop"]["p50"],
        "hop_p95_ms": primary.stages["hop"]["p95"],
        "hop_p99_ms": primary.stages["hop"]["p99"],
        "rtf": primary.rtf,
        "overhead_pct": primary.overhead_pct,
        "torch_over_ort": torch_over_ort,
        "torch_over_ort_hop": torch_over_hop,
        "torch_over_ort_int8": torch_over_int8,
        "int8_hop_p50_ms": None if int8 is None else int8.stages["hop"]["p50"],
        "int8_hop_p99_ms": None if int8 is None else int8.stages["hop"]["p99"],
        **pipelined_keys(primary, int8),
        **auto_keys(primary, auto),
        "primary": primary.label,
        "machine": machine.to_dict(),
        "load_avg_at_end": load_average(),
        "model": {"source": p.source, "preset": p.config.get("preset"),
                  "frame_size": p.config.get("frame_size"),
                  "sample_rate": p.config.get("sample_rate")},
        "settings": {"iters": args.iters, "warmup": args.warmup, "rounds": args.rounds,
                     "hop_ms": DEFAULT_HOP_MS,
                     "intra_threads": threads, "camera": f"{CAMERA_WIDTH}x{CAMERA_HEIGHT}",
                     "new_frames_per_hop": 1, "batch": 1},
        "variants": [r.to_dict() for r in results],
        "torch_eager": eager,
        "not_measured": p.not_measured,
        "hop_samples_ms": samples,
    }


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"machine: {m['cpu_model']}, {m['usable_cpus']} usable cores, onnxruntime "
             f"{m['onnxruntime']} {m['providers_available']}, load {m['load_avg_1_5_15']}",
             f"model: {report['model']['source']}; {report['settings']['iters']} hops after "
             f"{report['settings']['warmup']} warm-up hops, {report['settings']['intra_threads']} "
             f"intra-op threads", ""]
    rows = []
    stages = ("audio", "frame_per_frame", "head", "smooth", "graphs", "overhead", "hop")
    for v in report["variants"]:
        s = v["stages_ms"]
        label = f"{PROVIDER_SHORT.get(v['provider'], v['provider'])} {v['variant']}"
        if v["variant"] == AUTO:
            rows.append([label, "runs", ", ".join(f"{g} {p}" for g, p in
                                                  v["graph_precisions"].items()), "", ""])
        for k in stages:
            rows.append([label, k, fmt_ms(s[k]["p50"]), fmt_ms(s[k]["p95"]), fmt_ms(s[k]["p99"])])
        rows.append([label, "rtf / overhead",
                     f"{v['rtf']:.3f}" if v["rtf"] is not None else "-",
                     f"{v['overhead_pct']:.1f}%" if v["overhead_pct"] is not None else "-", ""])
    if report["torch_eager"] is not None:
        s = report["torch_eager"]["stages_ms"]
        for k in ("audio", "frame", "head", "graphs"):
            rows.append(["torch eager", k, fmt_ms(s[k]["p50"]), fmt_ms(s[k]["p95"]),
                         fmt_ms(s[k]["p99"])])
    lines.append(table(["variant", "stage (ms)", "p50", "p95", "p99"], rows))
    lines.append("")
    ratio = report["torch_over_ort"]
    for v in report["variants"]:
        pv = v["pipelined"]
        if pv is not None:
            d = pv["stages_ms"]["delay"]
            lines.append(f"{PROVIDER_SHORT.get(v['provider'], v['provider'])} {v['variant']} "
                         f"pipelined at live pace: delay p50 {fmt_ms(d['p50'])} ms, p99 "
                         f"{fmt_ms(d['p99'])} ms; CPU s per stream s {pv['rtf_cpu']} "
                         f"(synchronous at the same pace {pv['synchronous']['rtf_cpu']}, "
                         f"fed as fast as it runs {v['rtf_cpu']})")
            lines.append(f"  by round: delay p99 {fmt_list(pv['delay_p99_by_round'])} ms; "
                         f"synchronous frame encode p50 "
                         f"{fmt_list(pv['synchronous']['frame_p50_by_round'])} ms; dropped "
                         f"pipelined {pv['hops_dropped_by_round']}, synchronous "
                         f"{pv['synchronous']['hops_dropped_by_round']}")
    lines.append(f"hop p50 {fmt_ms(report['hop_p50_ms'])} ms, p99 {fmt_ms(report['hop_p99_ms'])} "
                 f"ms ({report['primary']}); int8 hop p50 {fmt_ms(report['int8_hop_p50_ms'])} ms; "
                 f"torch eager / ORT: {'-' if ratio is None else f'{ratio:.2f}x'}")
    if report["auto_delay_p50_ms"] is not None:
        lines.append(f"auto ({report['auto_precision']}): delay p50 "
                     f"{fmt_ms(report['auto_delay_p50_ms'])} ms vs fp32 "
                     f"{fmt_ms(report['delay_p50_ms'])} ms in the same run; no worse: "
                     f"{report['auto_delay_p50_not_worse_than_fp32']}")
    for line in report["not_measured"]:
        lines.append(f"not measured: {line}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    ap.add_argument("--plot", type=Path, help="write the hop latency PNG here")
    ap.add_argument("--config", choices=CONFIG_NAMES, default="paper",
                    help="untrained model to build and time (default: paper)")
    ap.add_argument("--model", type=Path, action="append",
                    help="time this bundle instead (repeatable: e.g. an fp32 and an int8 bundle)")
    ap.add_argument("--provider", help="time only this provider (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op threads (0: the daemon's default for this machine)")
    ap.add_argument("--iters", type=int, default=DEFAULT_ITERS, help="timed hops per variant")
    ap.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed hops first")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch eager baseline")
    ap.add_argument("--rounds", type=int, default=PAIRED_ROUNDS,
                    help="alternating synchronous / pipelined rounds at live pace (the compute "
                         "comparison; default %(default)s)")
    ap.add_argument("--no-pipelined", action="store_true",
                    help="skip the live-paced pipelined run (delay figures)")
    ap.add_argument("--cache", type=Path, help="bundle cache (default ~/.cache/avstream/bench)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.threads < 0 or args.rounds < 1:
        ap.error(f"--iters {args.iters}, --warmup {args.warmup}, --threads {args.threads}, "
                 f"--rounds {args.rounds}; expected iters >= 1, warmup >= 0, threads >= 0, "
                 f"rounds >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def plot(report: dict[str, Any]) -> None:
        if args.plot is not None:
            from bench.plot import plot_hop_latency

            plot_hop_latency(report, args.plot)

    return bench_main("bench/latency.py", args, run, render, after=plot)


if __name__ == "__main__":
    sys.exit(main())
