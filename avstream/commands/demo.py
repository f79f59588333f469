"""``avstream demo``: the embedded default. Builds once, then replays a recording live."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from avstream.commands import options as opt
from avstream.demo import DEMO_VERSION, build_assets, cached_assets, default_cache_dir
from avstream.driver import Outputs, Pace, open_engine, run_command
from avstream.inference.engine import Engine
from avstream.outputs.collect import Collect
from avstream.outputs.history import DEFAULT_DAYS, DEFAULT_MAX_MB
from avstream.outputs.jsonl import DEFAULT_KEEP
from avstream.outputs.network import DEMO_NAME
from avstream.sources.base import SourceInfo
from avstream.sources.media_file import MediaFileSource
from avstream.stream.pipeline import PipelineConfig
from avstream.truth import read_truth_csv, score_timeline


def demo(
    cache_dir: Annotated[Path | None, typer.Option(
        help="Where the demo model and recording are kept (default "
        f"~/.cache/avstream/demo-v{DEMO_VERSION}).")] = None,
    rebuild: Annotated[bool, typer.Option(help="Build again even if a finished build exists.")] = False,
    realtime: Annotated[bool, typer.Option(
        "--realtime/--fast", help="Replay at the wall-clock pace (default) or as fast as possible.")] = True,
    jsonl: opt.Jsonl = None,
    view: opt.View = None,
    mqtt: opt.Mqtt = None,
    mqtt_hop_rate: opt.MqttHopRate = 0.0,
    http: opt.Http = None,
    http_token: opt.HttpToken = None,
    name: opt.Name = None,
    history: opt.History = None,
    history_days: opt.HistoryDays = DEFAULT_DAYS,
    history_max_mb: opt.HistoryMaxMb = DEFAULT_MAX_MB,
    jsonl_rotate: opt.JsonlRotate = None,
    jsonl_keep: opt.JsonlKeep = DEFAULT_KEEP,
    provider: opt.Provider = None,
    precision: opt.Precision = opt.DEFAULT_PRECISION,
) -> None:
    """Build (once) a demo bundle of the paper's architecture on synthetic scenes and a recording
    that moves through eight of them, replay it live, and score the labels against the truth.
    The demo model knows synthetic scenes, not real ones."""
    outputs = Outputs(jsonl=jsonl, view=view, mqtt=mqtt, mqtt_hop_rate_hz=mqtt_hop_rate,
                      http=http, http_token=http_token,
                      history=history, history_days=history_days, history_max_mb=history_max_mb,
                      jsonl_rotate=jsonl_rotate, jsonl_keep=jsonl_keep,
                      name=name if name is not None else DEMO_NAME)
    outputs.check()
    root = cache_dir or default_cache_dir()
    assets = None if rebuild else cached_assets(root)
    if assets is None:
        assets = build_assets(root)
        print(f"avstream demo: built in {assets.build_seconds:.0f} s", file=sys.stderr)
    recording, bundle = assets.recording, assets.bundle

    def headline(info: SourceInfo, engine: Engine, pace: Pace) -> list[str]:
        return [f"replaying {recording.name} ({pace}) with the demo bundle {bundle} "
                f"({engine.precision})"]

    recorder = Collect()
    done = run_command("avstream demo", lambda: MediaFileSource(recording),
                       lambda: open_engine(bundle, provider, precision=precision),
                       PipelineConfig(), outputs, headline, realtime=realtime,
                       extra_sinks=[recorder])
    if done is None:
        return
    truth = read_truth_csv(assets.truth_csv)
    score = score_timeline(recorder.times, recorder.labels, truth)
    delays = [d for d in score.change_delays_s if d is not None]
    print(f"accuracy against the true scenes: {score.accuracy:.1%} of {score.judged} windows "
          f"(2 s after each change left out); {score.accuracy_all:.1%} of all {score.windows}; "
          f"{len(delays)}/{len(score.change_delays_s)} changes shown"
          + (f", after {max(delays):.1f} s at most" if delays else ""), file=done.out)
