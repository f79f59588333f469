"""Many streams on one machine: one ``avstream serve`` batching vs N ``avstream replay --realtime``.

    python -m bench.streams [--json] [--seconds 15] [--max-streams 16] [--demo BUNDLE]

For each bundle (the paper model as int8, untrained, built by ``bench.common.prepare_bundle``;
and the demo bundle: ``avstream demo``'s if built, else its graphs untrained), N copies of a synthetic recording (bench/throughput.py's,
``--seconds`` long) are played at live pace, N = 1, 2, 3, 4, 6, 8, 12, ... up to
``--max-streams``, in two ways side by side:

- batched: one ``avstream serve`` process with N file streams (``pace = "realtime"``), one set of
  sessions, frame encodes and windows batched across streams;
- processes: N ``avstream replay --realtime`` processes.

Both run every graph on ``GRAPH_THREADS`` intra-op thread.

A run *holds* N streams when every stream wrote as many records as a ``--fast`` replay of the
recording has windows (no hop dropped, none without media) and kept up with the wall clock: the
99th percentile of the records' ``lag`` (wall time behind the window's end) is at most
``MAX_LAG_MS``. (A process short of CPU may fall behind in decoding instead of dropping hops;
its windows then come seconds late, which is not live either.) The figure is the largest N that
held before the first N that did not. CPU seconds come from the kernel's accounting of each
finished process (``wait4``), peak resident memory from sampling each process; per stream =
total / N (CPU as a share of one core over the run's wall time, start-up included).

Past capacity: the batched run at ``OVER_CAPACITY`` times the most streams it held (at least
one) is also made, and the smallest share of its windows any stream got there is reported as
``delivered_share_min_over_capacity`` (with that run's lag p99 in hops): a serve that sheds
load fairly gives every stream about 1 / ``OVER_CAPACITY`` of windows less, not most of them.

Archive labelling throughput: ``avstream batch`` over ``--batch-files`` copies of the recording
with 1 and 2 workers, in stream hours per wall-clock hour.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.common import bench_main, load_average, machine_info, prepare_bundle, table

log = logging.getLogger("bench.streams")

STREAM_COUNTS: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
DEFAULT_SECONDS = 15.0
DEFAULT_MAX_STREAMS = 16
DEFAULT_BATCH_FILES = 2
DEFAULT_WAIT_MS = 0.0
GRAPH_THREADS = 1
"""Intra-op threads per graph in both modes: N processes x 1 against one process whose two
lanes (encodes, windows) run a graph each at the same time; more would oversubscribe 2 cores."""
RUN_MARGIN_S = 60.0
"""A run is killed this long after its recording should have ended (start-up included)."""
MB = 1024.0 * 1024.0
RSS_SAMPLE_S = 0.1
S_PER_H = 3600.0
WORKER_COUNTS: tuple[int, ...] = (1, 2)
MAX_LAG_MS = 1000.0
"""A stream whose records come more than this behind the wall clock (p99) is not held."""
LAG_PERCENTILE = 99
KEEP_GOING_DELIVERED = 0.5
"""Past the first failure, larger N are still run while this share of windows is delivered."""
OVER_CAPACITY = 1.5
"""Streams past capacity for the shedding figure, as a multiple of the most streams held."""
HOP_MS = 200.0
"""The default hop every stream of the benchmark runs at (lag in hops = lag ms / this)."""


@dataclass(frozen=True)
class Usage:
    wall_s: float
    cpu_s: float
    """User + system CPU seconds of all processes of the run."""
    max_rss_mb: float
    """Sum over the run's processes of each one's peak resident memory (sampled every
    ``RSS_SAMPLE_S``: the kernel's ``ru_maxrss`` would count the benchmark's own memory, which a
    child inherits until it execs)."""


@dataclass(frozen=True)
class Trial:
    mode: str
    streams: int
    held: bool
    records: list[int]
    expected: int
    lag_ms_p99: float | None
    """Over every record of the run; None when no record has a lag."""
    usage: Usage

    def per_stream(self) -> dict[str, float]:
        u = self.usage
        return {"cpu_percent": round(100.0 * u.cpu_s / u.wall_s / self.streams, 1),
                "rss_mb": round(u.max_rss_mb / self.streams, 1),
                "windows_delivered": round(sum(self.records) / (self.streams * self.expected), 3)}


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def _rss_mb(proc: psutil.Process) -> float:
    try:
        return proc.memory_info().rss / MB
    except psutil.Error:  # ended between two samples
        return 0.0


def run_processes(commands: list[list[str]], timeout_s: float) -> Usage:
    """Start the commands together, wait for all: CPU seconds from ``wait4`` (the kernel's
    accounting of each finished child), peak RSS of each sampled every ``RSS_SAMPLE_S``."""
    t0 = time.monotonic()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
             for c in commands]
    watched = {p.pid: psutil.Process(p.pid) for p in procs}
    peaks = dict.fromkeys(watched, 0.0)
    cpu = 0.0
    pids = {p.pid: p for p in procs}
    deadline = t0 + timeout_s
    try:
        while pids:
            for pid in list(pids):
                peaks[pid] = max(peaks[pid], _rss_mb(watched[pid]))
                done, _, ru = os.wait4(pid, os.WNOHANG)
                if done:
                    pids.pop(pid).returncode = 0
                    cpu += ru.ru_utime + ru.ru_stime
            if time.monotonic() > deadline:
                for p in pids.values():
                    p.kill()
                log.warning("%d process(es) killed after %.0f s", len(pids), timeout_s)
                deadline = float("inf")
            time.sleep(RSS_SAMPLE_S)
    finally:  # interrupted: leave nothing running
        for p in pids.values():
            p.kill()
    return Usage(round(time.monotonic() - t0, 2), round(cpu, 2), round(sum(peaks.values()), 1))


def _count(path: Path) -> int:
    return sum(1 for _ in path.open(encoding="utf-8")) if path.exists() else 0


def _lags(paths: Sequence[Path]) -> list[float]:
    out = []
    for p in paths:
        if p.exists():
            for line in p.open(encoding="utf-8"):
                lag = json.loads(line)["latency_ms"].get("lag")
                if lag is not None:
                    out.append(float(lag))
    return out


def expected_windows(bundle: Path, media: Path, work: Path) -> int:
    out = work / "fast.jsonl"
    subprocess.run([sys.executable, "-m", "avstream", "replay", str(media), "--model", str(bundle),
                    "--fast", "--jsonl", str(out), "--no-view"], check=True, env=_env(),
                   capture_output=True, timeout=600)
    return _count(out)


def serve_config(bundle: Path, media: Path, n: int, out: Path, wait_ms: float) -> Path:
    lines = [f'model = "{bundle}"', f"threads = {GRAPH_THREADS}", f"max_batch_wait_ms = {wait_ms:g}",
             ""]
    for i in range(n):
        lines += [f"[streams.s{i}]", f'file = "{media}"', 'pace = "live"',
                  f"[streams.s{i}.outputs]", f'jsonl = "{out / f"s{i}.jsonl"}"', ""]
    path = out / "serve.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def trial(mode: str, bundle: Path, media: Path, n: int, expected: int, args: argparse.Namespace,
          work: Path) -> Trial:
    out = work / f"{mode}-{n}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    avstream = [sys.executable, "-m", "avstream"]
    if mode == "batched":
        commands = [[*avstream, "serve", str(serve_config(bundle, media, n, out,
                                                          args.max_batch_wait_ms))]]
    else:
        commands = [[*avstream, "replay", str(media), "--model", str(bundle), "--realtime",
                     "--jsonl", str(out / f"s{i}.jsonl"), "--no-view", "--threads",
                     str(GRAPH_THREADS)]
                    for i in range(n)]
    usage = run_processes(commands, args.seconds + RUN_MARGIN_S)
    paths = [out / f"s{i}.jsonl" for i in range(n)]
    records = [_count(p) for p in paths]
    lags = _lags(paths)
    lag = round(float(np.percentile(lags, LAG_PERCENTILE)), 1) if lags else None
    held = all(r == expected for r in records) and lag is not None and lag <= MAX_LAG_MS
    log.info("%s x%d: %s records %s of %d, lag p99 %s ms, %s", mode, n,
             "held" if held else "FELL BEHIND", records, expected, lag, usage)
    return Trial(mode, n, held, records, expected, lag, usage)


def most_streams(mode: str, bundle: Path, media: Path, expected: int, args: argparse.Namespace,
                 work: Path) -> tuple[int, list[Trial]]:
    """The largest N of STREAM_COUNTS held before the first one that was not. The ladder goes
    on past a failure while a run still delivers ``KEEP_GOING_DELIVERED`` of its windows, so
    the two modes can be compared on a machine too busy to hold any."""
    best, failed, trials = 0, False, []
    for n in (c for c in STREAM_COUNTS if c <= args.max_streams):
        t = trial(mode, bundle, media, n, expected, args, work)
        trials.append(t)
        failed = failed or not t.held
        if not failed:
            best = n
        if t.per_stream()["windows_delivered"] < KEEP_GOING_DELIVERED:
            break
    return best, trials


def over_capacity(capacity: int, trials: list[Trial], bundle: Path, media: Path, expected: int,
                  args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The batched run at ``OVER_CAPACITY`` x ``capacity`` streams (made here unless the ladder
    made it): the smallest share of windows a stream got, and the lag p99 in hops."""
    n = math.ceil(OVER_CAPACITY * max(capacity, 1))
    t = next((t for t in trials if t.streams == n), None) or trial(
        "batched", bundle, media, n, expected, args, work)
    return {"streams": n, "delivered_share_min": round(min(t.records) / t.expected, 3),
            "lag_p99_hops": None if t.lag_ms_p99 is None else round(t.lag_ms_p99 / HOP_MS, 2)}


def batch_throughput(bundle: Path, media: Path, files: int, work: Path) -> dict[str, float]:
    """Stream hours labelled per wall hour by ``avstream batch`` with 1 and 2 workers."""
    inputs = work / "archive"
    inputs.mkdir(exist_ok=True)
    for i in range(files):
        shutil.copy(media, inputs / f"clip{i}{media.suffix}")
    import av

    with av.open(str(media)) as c:
        seconds = files * float(c.duration) / 1e6
    out: dict[str, float] = {}
    for w in WORKER_COUNTS:
        dest = work / f"batch-{w}"
        shutil.rmtree(dest, ignore_errors=True)
        usage = run_processes([[sys.executable, "-m", "avstream", "batch", str(inputs), "--model",
                                str(bundle), "--out", str(dest), "--workers", str(w)]],
                              timeout_s=3600)
        out[str(w)] = round(seconds / usage.wall_s, 2)
        log.info("batch, %d worker(s): %.0f s of stream in %.1f s", w, seconds, usage.wall_s)
    return out


def bench_bundle(name: str, bundle: Path, media: Path, args: argparse.Namespace,
                 work: Path) -> dict[str, Any]:
    w = work / name
    w.mkdir(parents=True, exist_ok=True)
    expected = expected_windows(bundle, media, w)
    result: dict[str, Any] = {"bundle": str(bundle), "windows_per_stream": expected}
    for mode in ("batched", "processes"):
        best, trials = most_streams(mode, bundle, media, expected, args, w)
        result[mode] = {"most_streams": best, "trials": [
            {**asdict(t), "per_stream": t.per_stream()} for t in trials]}
        if mode == "batched":
            result[mode]["over_capacity"] = over_capacity(best, trials, bundle, media, expected,
                                                          args, w)
    if args.batch_files > 0:
        result["batch_stream_hours_per_hour"] = batch_throughput(bundle, media,
                                                                 args.batch_files, w)
    return result


def _at(r: dict[str, Any], mode: str, key: str) -> float:
    """A per-stream figure of ``mode``'s largest run that held (its first run if none did)."""
    trials = r[mode]["trials"]
    held = [t for t in trials if t["held"]]
    return (held[-1] if held else trials[0])["per_stream"][key]


def demo_bundle(cache: Path | None) -> Path:
    """``avstream demo``'s bundle if it is built (AVSTREAM_CACHE or ~/.cache/avstream), else the
    same graphs untrained (the ``demo`` preset, fp32 as the demo exports it): its speed does
    not depend on its weights, and training it takes minutes."""
    from avstream.demo import cached_assets, default_cache_dir

    assets = cached_assets(default_cache_dir())
    return assets.bundle if assets is not None else prepare_bundle("demo", "fp32", cache)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.throughput import recording

    t0 = time.monotonic()
    report: dict[str, Any] = {"machine": machine_info().to_dict(), "seconds": args.seconds,
                              "max_batch_wait_ms": args.max_batch_wait_ms}
    media = recording(args.seconds / 60.0, args.cache)
    bundles: dict[str, Path] = {}
    if "int8" in args.bundles:
        bundles["int8"] = Path(args.int8) if args.int8 else prepare_bundle("paper", "int8",
                                                                            args.cache)
    if "demo" in args.bundles:
        bundles["demo"] = Path(args.demo) if args.demo else demo_bundle(args.cache)
    work = Path(tempfile.mkdtemp(prefix="avstream-bench-streams-"))
    try:
        for name, bundle in bundles.items():
            r = bench_bundle(name, bundle, media, args, work)
            report[name] = r
            report[f"streams_batched_{name}"] = r["batched"]["most_streams"]
            report[f"streams_processes_{name}"] = r["processes"]["most_streams"]
            report[f"rss_mb_per_stream_batched_{name}"] = _at(r, "batched", "rss_mb")
            report[f"rss_mb_per_stream_processes_{name}"] = _at(r, "processes", "rss_mb")
            report[f"cpu_percent_per_stream_batched_{name}"] = _at(r, "batched", "cpu_percent")
            report[f"cpu_percent_per_stream_processes_{name}"] = _at(r, "processes", "cpu_percent")
            report[f"delivered_share_min_over_capacity_{name}"] = (
                r["batched"]["over_capacity"]["delivered_share_min"])
        first = next(iter(bundles))  # int8 unless only the demo ran
        report["rss_mb_per_stream_batched"] = report[f"rss_mb_per_stream_batched_{first}"]
        report["delivered_share_min_over_capacity"] = report[
            f"delivered_share_min_over_capacity_{first}"]
        report["batch_stream_hours_per_hour"] = report[first].get("batch_stream_hours_per_hour")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["bench_wall_s"] = round(time.monotonic() - t0, 1)
    report["load_avg_at_end"] = load_average()
    return report


def render(r: dict[str, Any]) -> str:
    rows = []
    for name in ("int8", "demo"):
        if name not in r:
            continue
        for mode in ("batched", "processes"):
            for t in r[name][mode]["trials"]:
                rows.append([name, mode, str(t["streams"]), "yes" if t["held"] else "no",
                             f"{t['per_stream']['windows_delivered']:.0%}",
                             "-" if t["lag_ms_p99"] is None else f"{t['lag_ms_p99']:.0f}",
                             f"{t['per_stream']['cpu_percent']:.0f}",
                             f"{t['per_stream']['rss_mb']:.0f}"])
    head = ["bundle", "mode", "streams", "held", "windows", "lag p99 ms", "CPU %/stream",
            "RSS MB/stream"]
    lines = [table(head, rows), ""]
    for k, v in r.items():
        if k.startswith(("streams_", "rss_mb_per", "cpu_percent_per", "batch_stream",
                         "delivered_share")):
            lines.append(f"{k}: {v}")
    lines.append(f"bench took {r['bench_wall_s']:.0f} s; load average at end {r['load_avg_at_end']}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                    help="length of the recording every stream plays (default 15)")
    ap.add_argument("--max-streams", type=int, default=DEFAULT_MAX_STREAMS)
    ap.add_argument("--max-batch-wait-ms", type=float, default=DEFAULT_WAIT_MS,
                    help="the serve config's max_batch_wait_ms (default 0: on a CPU a batch "
                         "gains little, and waiting for one costs every window that long)")
    ap.add_argument("--batch-files", type=int, default=DEFAULT_BATCH_FILES,
                    help="copies of the recording labelled by `avstream batch` (0: skip)")
    ap.add_argument("--int8", help="a paper int8 bundle (default: built untrained, cached)")
    ap.add_argument("--demo", help="the demo bundle (default: avstream demo's if built, else "
                    "the demo preset untrained)")
    ap.add_argument("--bundles", type=lambda s: s.split(","), default=["int8", "demo"],
                    help="which to run, comma-separated (default int8,demo)")
    ap.add_argument("--cache", type=Path, help="bundle and recording cache "
                    "(default ~/.cache/avstream/bench)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not (args.seconds > 0 and args.max_streams >= 1 and args.batch_files >= 0):
        ap.error("expected --seconds > 0, --max-streams >= 1, --batch-files >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("bench/streams.py", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
